"""Property-based tests of the masked multi-task loss (issue 9, numerical safety).

Random task sets of every type, random shapes, random masks (all missing, exactly one present, mixes) with missing
spelled -100 or NaN, extreme logits (±1e4 and mixes), loss weights including 0, ``num_items`` given or not. The
float32 loss and its gradient w.r.t. the logits must be finite and equal a float64 reference written here from the
plain formulas (log-sigmoid BCE, log-sum-exp CE, squared error); an all-missing batch gives exactly 0 and zero
gradients. The example budget is fixed and derandomized so CI runs the same examples every time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hf_mtl import MISSING, TaskSpec, multitask_loss

EPS32 = float(torch.finfo(torch.float32).eps)
BUDGET = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SMALL_BUDGET = settings(BUDGET, max_examples=60)

EXTREME = 1e4
logit_values = st.one_of(
    st.sampled_from([EXTREME, -EXTREME, 0.0, EXTREME - 0.5, -EXTREME + 0.5]),
    st.floats(-EXTREME, EXTREME, width=32),
    st.floats(-5.0, 5.0, width=32),
)


@dataclass
class Case:
    """One drawn problem: specs, float32 logits, labels (as the collator would build them) and the loss options."""

    specs: list[TaskSpec]
    logits: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    num_items: dict[str, torch.Tensor | int] | None

    def fresh(self, labels: dict[str, torch.Tensor] | None = None) -> Case:
        """The same case with new leaf logits (no gradient left over from an earlier run of an @example)."""
        logits = {k: v.detach().clone().requires_grad_(True) for k, v in self.logits.items()}
        return Case(self.specs, logits, self.labels if labels is None else labels, self.num_items)


def _present_values(draw, spec: TaskSpec, batch: int) -> list[list[float]]:
    n = spec.output_size
    if spec.type == "multiclass":
        return [[float(draw(st.integers(0, n - 1)))] for _ in range(batch)]
    if spec.type == "regression":
        # a regression target of exactly -100 is the missing sentinel in tensors (see the report of issue 9)
        value = st.one_of(st.floats(-EXTREME, EXTREME, width=32), st.sampled_from([0.0, EXTREME, -EXTREME]))
        value = value.filter(lambda v: v != MISSING)
        return [[draw(value) for _ in range(n)] for _ in range(batch)]
    return [[float(draw(st.integers(0, 1))) for _ in range(n)] for _ in range(batch)]


@st.composite
def cases(draw) -> Case:
    batch = draw(st.integers(1, 8))
    types = draw(st.lists(st.sampled_from(["multilabel", "binary", "multiclass", "regression"]), min_size=1, max_size=4))
    specs, logits, labels, num_items = [], {}, {}, {}
    give_num_items = draw(st.booleans())
    for i, kind in enumerate(types):
        n = {"binary": 1, "multiclass": draw(st.integers(2, 6))}.get(kind, draw(st.integers(1, 6)))
        spec = {"name": f"t{i}", "type": kind, "loss_weight": draw(st.sampled_from([0.0, 0.3, 1.0, 2.5]))}
        spec["num_outputs" if kind != "binary" else "labels"] = n if kind != "binary" else ["no", "yes"]
        if kind in ("multilabel", "binary") and draw(st.booleans()):
            spec["pos_weight"] = draw(st.lists(st.sampled_from([0.05, 0.5, 1.0, 3.0, 20.0]), min_size=n, max_size=n))
        spec = TaskSpec.from_dict(spec)
        specs.append(spec)

        z = torch.tensor([[draw(logit_values) for _ in range(n)] for _ in range(batch)], dtype=torch.float32)
        logits[spec.name] = z.requires_grad_(True)

        values = _present_values(draw, spec, batch)
        cols = 1 if kind == "multiclass" else n
        mask_kind = draw(st.sampled_from(["random", "all_missing", "one_present", "all_present"]))
        if mask_kind == "random":
            present = [[draw(st.booleans()) for _ in range(cols)] for _ in range(batch)]
        else:
            present = [[mask_kind == "all_present"] * cols for _ in range(batch)]
            if mask_kind == "one_present":
                present[draw(st.integers(0, batch - 1))][draw(st.integers(0, cols - 1))] = True
        float_labels = kind != "multiclass" or draw(st.booleans())  # multiclass ids may also come as floats with NaN
        spellings = st.sampled_from([float(MISSING), math.nan]) if float_labels else st.just(float(MISSING))
        rows = [[v if p else draw(spellings) for v, p in zip(vs, ps)] for vs, ps in zip(values, present)]
        y = torch.tensor(rows, dtype=torch.float32 if float_labels else torch.long)
        if cols == 1 and (kind != "regression" or draw(st.booleans())):
            y = y[:, 0]  # multiclass, binary and single-output regression labels are usually (batch,)
        if not draw(st.integers(0, 9)):
            continue  # a task absent from the batch's label dict (no dataset of this task in the batch)
        labels[spec.name] = y

        count = sum(map(sum, present))
        extra = draw(st.integers(0, 10))  # the effective batch (accumulation window, other processes) may hold more
        num_items[spec.name] = torch.tensor(count + extra) if draw(st.booleans()) else count + extra
    return Case(specs, logits, labels, num_items if give_num_items else None)


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _is_present(value: float) -> bool:
    return value != MISSING and not math.isnan(value)


def reference(case: Case) -> tuple[float, dict[str, list[list[float]]], float]:
    """(loss, d loss / d logits, absolute tolerance) in float64 from the plain formulas, element by element."""
    total, tolerance, grads = 0.0, 0.0, {}
    for spec in case.specs:
        z = case.logits[spec.name].detach().double().tolist()
        if spec.name not in case.labels:
            grads[spec.name] = [[0.0] * len(z[0]) for _ in z]
            continue
        y = case.labels[spec.name].double().reshape(len(z), -1).tolist()
        w, n = spec.loss_weight, len(z[0])
        terms, grad = [], [[0.0] * n for _ in z]
        for i, (zi, yi) in enumerate(zip(z, y)):
            if spec.type == "multiclass":
                if not _is_present(yi[0]):
                    continue
                top = max(zi)
                lse = top + math.log(sum(math.exp(v - top) for v in zi))
                terms.append(lse - zi[int(yi[0])])
                grad[i] = [math.exp(v - lse) - (j == int(yi[0])) for j, v in enumerate(zi)]
                continue
            for j, (x, t) in enumerate(zip(zi, yi)):
                if not _is_present(t):
                    continue
                if spec.type == "regression":
                    terms.append((x - t) ** 2)
                    grad[i][j] = 2 * (x - t)
                else:  # -[pw·t·log σ(x) + (1-t)·log(1-σ(x))], with log σ(x) = -softplus(-x)
                    pw = spec.pos_weight[j] if spec.pos_weight else 1.0
                    terms.append(pw * t * _softplus(-x) + (1 - t) * _softplus(x))
                    grad[i][j] = -pw * t * _sigmoid(-x) + (1 - t) * _sigmoid(x)
        normaliser = max(1, len(terms) if case.num_items is None else int(case.num_items[spec.name]))
        total += w * sum(terms) / normaliser
        grads[spec.name] = [[w * g / normaliser for g in row] for row in grad]
        # float32 rounds log-sum-exp / softplus at the scale of the largest logit (|x| ~ 1e4 → ~1e-3 absolute)
        scale = max([1.0] + [abs(v) for row in z for v in row] + [abs(v) for row in y for v in row if _is_present(v)])
        tolerance += w * 16 * EPS32 * scale
    return total, grads, tolerance


def _check(case: Case) -> None:
    case = case.fresh()
    loss, per_task = multitask_loss(case.specs, case.logits, case.labels, num_items=case.num_items)
    loss.backward()
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert torch.isfinite(loss), f"non-finite loss {loss.item()}"
    assert all(torch.isfinite(v) for v in per_task.values()), per_task
    expected, expected_grads, atol = reference(case)
    assert math.isclose(loss.item(), expected, rel_tol=1e-5, abs_tol=atol), (loss.item(), expected, atol)
    for spec in case.specs:
        grad = case.logits[spec.name].grad
        assert grad is not None, f"task {spec.name!r} is cut from the graph"
        assert torch.isfinite(grad).all(), (spec.name, grad)
        want = torch.tensor(expected_grads[spec.name], dtype=torch.float64)
        # d/dx of softplus etc. is bounded; regression gradients scale with |x - t|, hence the relative part
        assert torch.allclose(grad.double(), want, rtol=1e-5, atol=1e-6), (spec.name, grad, want)


def _fixed_case(specs: list[dict], logits: dict, labels: dict, num_items=None) -> Case:
    specs = [TaskSpec.from_dict(s) for s in specs]
    return Case(
        specs,
        {k: torch.tensor(v, dtype=torch.float32, requires_grad=True) for k, v in logits.items()},
        {k: torch.tensor(v) for k, v in labels.items()},
        num_items,
    )


EXTREME_MIX = _fixed_case(
    [
        {"name": "ml", "type": "multilabel", "num_outputs": 3, "pos_weight": [20.0, 0.05, 1.0]},
        {"name": "mc", "type": "multiclass", "num_outputs": 3, "loss_weight": 0.0},
        {"name": "rg", "type": "regression", "num_outputs": 2},
        {"name": "bi", "type": "binary", "labels": ["no", "yes"]},
    ],
    {
        "ml": [[EXTREME, -EXTREME, 0.0], [-EXTREME, EXTREME, EXTREME]],
        "mc": [[EXTREME, -EXTREME, EXTREME - 0.5], [-EXTREME, -EXTREME, -EXTREME]],
        "rg": [[EXTREME, -EXTREME], [0.0, 1.0]],
        "bi": [[-EXTREME], [EXTREME]],
    },
    {
        "ml": [[0.0, 1.0, math.nan], [1.0, 0.0, -100.0]],  # every label wrong at |logit| = 1e4
        "mc": [2, -100],
        "rg": [[-EXTREME, EXTREME], [math.nan, -100.0]],
        "bi": [1.0, 0.0],
    },
)
ONE_PRESENT = _fixed_case(
    [{"name": "mc", "type": "multiclass", "num_outputs": 4}, {"name": "rg", "type": "regression"}],
    {"mc": [[EXTREME, 0.0, -EXTREME, 1.0]] * 3, "rg": [[EXTREME], [-EXTREME], [3.0]]},
    {"mc": [math.nan, 2.0, math.nan], "rg": [[-100.0], [math.nan], [-EXTREME]]},
    num_items={"mc": torch.tensor(5), "rg": 1},
)

FP16_OVERFLOW = _fixed_case(  # per-label sums above 65504, and a task without labels whose logits sum above it
    [{"name": "mc", "type": "multiclass", "num_outputs": 2}, {"name": "ml", "type": "multilabel", "num_outputs": 6}],
    {"mc": [[EXTREME, -EXTREME]] * 8, "ml": [[EXTREME] * 6] * 8},
    {"mc": [1] * 8},
)


@BUDGET
@given(cases())
@example(EXTREME_MIX)
@example(ONE_PRESENT)
def test_masked_loss_is_finite_and_matches_float64_reference(case):
    _check(case)


def _all_missing(case: Case) -> Case:
    labels = {}
    for spec in case.specs:
        if spec.name not in case.labels:
            continue
        y = case.labels[spec.name]
        fill = torch.nan if y.is_floating_point() else MISSING
        labels[spec.name] = torch.full_like(y, fill)
    return case.fresh(labels)


@SMALL_BUDGET
@given(cases())
@example(EXTREME_MIX)
def test_all_missing_batch_gives_exact_zero_and_zero_gradients(case):
    case = _all_missing(case)
    loss, per_task = multitask_loss(case.specs, case.logits, case.labels, num_items=case.num_items)
    loss.backward()
    assert loss.item() == 0.0 and all(v.item() == 0.0 for v in per_task.values())
    for spec in case.specs:
        grad = case.logits[spec.name].grad
        assert grad is not None and torch.equal(grad, torch.zeros_like(grad)), spec.name


@SMALL_BUDGET
@given(cases(), st.sampled_from([torch.float16, torch.bfloat16]))
@example(FP16_OVERFLOW, torch.float16)
def test_low_precision_logits_give_a_float32_loss_that_matches_the_reference(case, dtype):
    """fp16 / bf16 heads (autocast): the loss is computed and returned in float32, so it does not overflow at 65504;
    the gradient reaching the logits is the float64 reference rounded to their dtype."""
    logits = {k: v.detach().to(dtype).requires_grad_(True) for k, v in case.logits.items()}
    case = Case(case.specs, logits, case.labels, case.num_items)
    loss, _ = multitask_loss(case.specs, case.logits, case.labels, num_items=case.num_items)
    loss.backward()
    expected, expected_grads, atol = reference(case)
    assert loss.dtype == torch.float32 and torch.isfinite(loss), loss
    assert math.isclose(loss.item(), expected, rel_tol=1e-5, abs_tol=atol), (loss.item(), expected, atol)
    for spec in case.specs:
        grad = case.logits[spec.name].grad
        want = torch.tensor(expected_grads[spec.name], dtype=torch.float64).to(dtype)  # inf where dtype overflows
        rtol = 2 * torch.finfo(dtype).eps
        assert torch.allclose(grad.double(), want.double(), rtol=rtol, atol=1e-6), (spec.name, grad, want)
