"""The masked multi-task loss against a hand-written reference, and its behaviour on missing labels."""

from __future__ import annotations

import math

import pytest
import torch

from hf_mtl import MISSING, TaskSpec, count_present_labels, multitask_loss
from tests.tiny_models import MIXED_TASKS, random_labels, timm_model

SPECS = [TaskSpec.from_dict(t) for t in MIXED_TASKS]
SPECS[0].pos_weight = [2.0, 0.5, 1.0]
SPECS[1].loss_weight = 0.7


def _random_logits(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {s.name: torch.randn(batch, s.output_size, generator=g, requires_grad=True) for s in SPECS}


def _reference_loss(logits, labels) -> float:
    """Element by element, in plain Python: mean over present labels per task, weighted sum over tasks."""
    total = 0.0
    for spec in SPECS:
        z, y = logits[spec.name].detach(), labels[spec.name]
        terms = []
        for i in range(z.shape[0]):
            if spec.type == "multiclass":
                if y[i] != MISSING:
                    terms.append(-torch.log_softmax(z[i], dim=-1)[int(y[i])].item())
                continue
            row = y[i].reshape(-1)
            for j in range(z.shape[1]):
                value = float(row[j])
                if value == MISSING or math.isnan(value):
                    continue
                x = float(z[i, j])
                if spec.type == "regression":
                    terms.append((x - value) ** 2)
                else:
                    pw = spec.pos_weight[j] if spec.pos_weight else 1.0
                    p = 1 / (1 + math.exp(-x))
                    terms.append(-(pw * value * math.log(p) + (1 - value) * math.log(1 - p)))
        total += spec.loss_weight * (sum(terms) / len(terms) if terms else 0.0)
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("missing", [0.0, 0.4, 0.9])
def test_masked_loss_matches_reference(seed, missing):
    logits = _random_logits(16, seed)
    labels = random_labels(SPECS, 16, missing=missing, generator=torch.Generator().manual_seed(seed))
    loss, per_task = multitask_loss(SPECS, logits, labels)
    assert loss.item() == pytest.approx(_reference_loss(logits, labels), rel=1e-5, abs=1e-6)
    assert set(per_task) == {s.name for s in SPECS}


def test_nan_counts_as_missing():
    logits = _random_logits(8)
    labels = random_labels(SPECS, 8, missing=0.5)
    as_nan = {k: (torch.where(v == MISSING, torch.nan, v) if v.is_floating_point() else v) for k, v in labels.items()}
    assert multitask_loss(SPECS, logits, as_nan)[0].item() == pytest.approx(multitask_loss(SPECS, logits, labels)[0].item())
    counts = count_present_labels(SPECS, as_nan)
    assert {k: int(v) for k, v in counts.items()} == {k: int(v) for k, v in count_present_labels(SPECS, labels).items()}


def _grads(logits, labels):
    for value in logits.values():
        value.grad = None
    loss, _ = multitask_loss(SPECS, logits, labels)
    loss.backward()
    return loss.detach().clone(), {k: v.grad.clone() for k, v in logits.items()}


def test_value_of_a_missing_label_changes_neither_loss_nor_gradients():
    logits = _random_logits(12)
    labels = random_labels(SPECS, 12, missing=0.5)
    loss_a, grads_a = _grads(logits, labels)
    # Overwrite every missing entry by something else that also means "missing" (NaN for float tasks), and the
    # multiclass sentinel stays -100: the only thing that may change is how "missing" is spelled.
    changed = {k: (torch.where(v == MISSING, torch.nan, v) if v.is_floating_point() else v.clone()) for k, v in labels.items()}
    loss_b, grads_b = _grads(logits, changed)
    assert torch.equal(loss_a, loss_b)
    for name in grads_a:
        assert torch.equal(grads_a[name], grads_b[name]), name
    # And a missing entry gets exactly zero gradient.
    mask = labels["tags"] == MISSING
    assert mask.any() and torch.all(grads_a["tags"][mask] == 0)


def test_all_missing_batch_gives_zero_loss_and_finite_zero_gradients():
    model = timm_model()
    labels = {s.name: torch.full_like(v, MISSING) for s, v in zip(SPECS, random_labels(SPECS, 4).values())}
    out = model(pixel_values=torch.randn(4, 3, 32, 32), labels=labels)
    assert out.loss.item() == 0.0
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, "the zero loss must stay connected to the graph (DDP needs every parameter used)"
    assert all(torch.isfinite(g).all() and torch.all(g == 0) for g in grads)


def test_task_without_labels_contributes_zero():
    logits = _random_logits(6)
    labels = random_labels(SPECS, 6, missing=0.0)
    labels["score"] = torch.full_like(labels["score"], MISSING)
    del labels["flag"]
    loss, per_task = multitask_loss(SPECS, logits, labels)
    assert per_task["score"].item() == 0.0 and per_task["flag"].item() == 0.0
    expected = sum(s.loss_weight * per_task[s.name] for s in SPECS if s.name in ("tags", "kind"))
    assert loss.item() == pytest.approx(expected.item())


def test_num_items_overrides_the_normaliser():
    logits = _random_logits(6)
    labels = random_labels(SPECS, 6, missing=0.3)
    counts = count_present_labels(SPECS, labels)
    _, per_task = multitask_loss(SPECS, logits, labels)
    doubled = {k: 2 * v for k, v in counts.items()}
    _, per_task_half = multitask_loss(SPECS, logits, labels, num_items=doubled)
    for name in per_task:
        assert per_task_half[name].item() == pytest.approx(per_task[name].item() / 2)
