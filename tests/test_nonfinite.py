"""NaN/inf during training (issue 9, numerical safety): detected, reported with step and task/input, and never applied.

Real ``MultiTaskTrainer.train()`` runs on the tiny timm backbone (it has BatchNorm, whose running statistics a NaN batch
would also poison) with one poisoned row fed in a known step (sequential sampling).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
from tests.multiprocess import accelerate_launch, requires_accelerate
from tests.tiny_models import synthetic_rows, timm_model

POISONED_ROW = 5  # batch size 4, sequential: the poisoned row is in the 2nd optimizer step of every epoch


class Snapshots(TrainerCallback):
    """The model's full state (parameters and buffers) before training and after every optimizer step."""

    def __init__(self):
        self.after: dict[int, dict[str, torch.Tensor]] = {}

    def _take(self, step, model):
        self.after[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._take(state.global_step, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._take(state.global_step, model)


def _rows(poison: str | None):
    rows = synthetic_rows(12, seed=0, missing=0.0)
    if poison == "nan_pixels":
        rows[POISONED_ROW]["pixel_values"][0, 3, :5] = math.nan
    elif poison == "huge_target":  # finite, accepted by the collator, but (logit - 1e30)^2 overflows float32
        rows[POISONED_ROW]["score"] = 1e30
    return rows


def _train(tmp_path, policy: str, poison: str | None, epochs: int = 1, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path), report_to=[], disable_tqdm=True, save_strategy="no", use_cpu=True, seed=0,
        per_device_train_batch_size=4, num_train_epochs=epochs, learning_rate=1e-2, logging_steps=1,
        train_sampling_strategy="sequential", nonfinite_policy=policy,
    )
    args = MultiTaskTrainingArguments(**{**kwargs, **overrides})
    snapshots = Snapshots()
    trainer = MultiTaskTrainer(model=timm_model(), args=args, train_dataset=_rows(poison), callbacks=[snapshots])
    return trainer, snapshots


def _assert_state_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        assert torch.equal(actual[key], expected[key]), key


def _all_finite(model) -> bool:
    return all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())


def test_stop_raises_naming_step_and_input_and_leaves_weights_as_after_the_previous_step(tmp_path):
    trainer, snapshots = _train(tmp_path, "stop", "nan_pixels")
    with pytest.raises(FloatingPointError) as caught:
        trainer.train()
    message = str(caught.value)
    assert "optimizer step 2 (during epoch 1;" in message and "input 'pixel_values'" in message, message
    assert "nonfinite_policy='skip'" in message  # says what to do
    assert trainer.state.global_step == 1
    # parameters AND BatchNorm running statistics: bit-identical to after step 1, all finite
    _assert_state_equal(trainer.model.state_dict(), snapshots.after[1])
    assert _all_finite(trainer.model)
    assert any(not torch.equal(snapshots.after[1][k], snapshots.after[0][k]) for k in snapshots.after[0])  # 1 trained


def test_stop_names_the_task_whose_loss_overflowed(tmp_path):
    # raw targets: standardised ones (the default) would scale 1e30 down to a finite loss
    trainer, snapshots = _train(tmp_path, "stop", "huge_target", standardize_targets=False)
    with pytest.raises(FloatingPointError, match=r"optimizer step 2 .*loss of task 'score'") as caught:
        trainer.train()
    message = str(caught.value)
    assert "input" not in message.split(". The update")[0], message  # the inputs were finite
    assert "'tags'" not in message and "'kind'" not in message  # the other tasks' losses were finite
    _assert_state_equal(trainer.model.state_dict(), snapshots.after[1])


def test_skip_skips_exactly_the_poisoned_steps_and_trains_the_others(tmp_path, caplog):
    # two epochs, micro-batches of 2 accumulated to 4: the poisoned micro-batch is part of step 2 and step 5
    trainer, snapshots = _train(tmp_path, "skip", "nan_pixels", epochs=2, per_device_train_batch_size=2,
                                gradient_accumulation_steps=2)
    with caplog.at_level("WARNING", logger="hf_mtl.nonfinite"):
        metrics = trainer.train().metrics
    assert trainer.state.global_step == 6 and metrics["nonfinite_skipped_steps"] == 2
    assert trainer.nonfinite_guard.skipped_steps == [2, 5]
    warnings = [r.getMessage() for r in caplog.records if "skipped this optimizer step" in r.getMessage()]
    assert len(warnings) == 2 and "optimizer step 2 (during epoch 1;" in warnings[0], warnings
    assert "optimizer step 5 (during epoch 2;" in warnings[1] and "input 'pixel_values'" in warnings[1], warnings
    counts = {e["step"]: e["nonfinite_skipped_steps"] for e in trainer.state.log_history if "nonfinite_skipped_steps" in e}
    assert counts == {1: 0, 2: 1, 3: 1, 4: 1, 5: 2, 6: 2}  # the last entry repeats step 6: the final train metrics
    assert all(math.isfinite(e["loss"]) for e in trainer.state.log_history if "loss" in e)
    assert all(math.isfinite(v) for e in trainer.state.log_history for k, v in e.items() if k.startswith("loss_"))
    assert _all_finite(trainer.model)
    after = snapshots.after
    for step in (2, 5):  # a skipped step changes nothing, BatchNorm statistics included
        _assert_state_equal(after[step], after[step - 1])
    for step in (1, 3, 4, 6):  # every other step trained
        assert any(not torch.equal(after[step][k], after[step - 1][k]) for k, _ in trainer.model.named_parameters())
    # the optimizer never saw the skipped steps: Adam's step count is the number of applied steps
    adam_steps = {int(state["step"]) for state in trainer.optimizer.state.values()}
    assert adam_steps == {4}


def test_skipped_step_count_survives_a_resume(tmp_path):
    first, _ = _train(tmp_path, "skip", "nan_pixels", max_steps=3, save_strategy="steps", save_steps=3)
    assert first.train().metrics["nonfinite_skipped_steps"] == 1
    resumed, _ = _train(tmp_path, "skip", "nan_pixels", max_steps=6, save_strategy="no")
    metrics = resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3")).metrics
    assert resumed.nonfinite_guard.skipped_steps == [5] and metrics["nonfinite_skipped_steps"] == 2
    assert _all_finite(resumed.model)


def test_off_keeps_the_stock_behaviour_which_corrupts_the_weights(tmp_path):
    trainer, _ = _train(tmp_path, "off", "nan_pixels")
    trainer.train()
    assert trainer.nonfinite_guard is None and trainer.state.global_step == 3
    assert not _all_finite(trainer.model)  # what the guard prevents


def test_clean_data_trains_under_stop_with_missing_labels(tmp_path):
    """Missing labels (None → -100, or NaN in a label tensor) are never an error."""
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], disable_tqdm=True, save_strategy="no",
                                      use_cpu=True, per_device_train_batch_size=4, max_steps=2)
    trainer = MultiTaskTrainer(model=timm_model(), args=args, train_dataset=synthetic_rows(8, missing=0.5))
    trainer.train()
    assert trainer.state.global_step == 2 and _all_finite(trainer.model)

    batch = trainer.data_collator(synthetic_rows(4, seed=1, missing=0.0))
    batch["labels"]["score"][1] = math.nan  # NaN = missing
    model = trainer.model.train()
    trainer.compute_loss(model, dict(batch)).backward()
    trainer.nonfinite_guard.on_pre_optimizer_step(args, trainer.state, trainer.control, model=model,
                                                  optimizer=trainer.optimizer)
    assert any(p.grad is not None for p in model.parameters())  # not skipped

    batch["labels"]["score"][1] = math.inf  # an infinite regression target is an error
    trainer.compute_loss(model, dict(batch)).backward()
    with pytest.raises(FloatingPointError, match=r"labels of task 'score' \(±inf\)"):
        trainer.nonfinite_guard.on_pre_optimizer_step(args, trainer.state, trainer.control, model=model,
                                                      optimizer=trainer.optimizer)
    assert all(p.grad is None for p in model.parameters())


def test_unknown_policy_fails_at_argument_parsing(tmp_path):
    with pytest.raises(ValueError, match=r"unknown nonfinite_policy 'nan'.*'stop', 'skip', 'off'"):
        MultiTaskTrainingArguments(output_dir=str(tmp_path), nonfinite_policy="nan")


DDP_SCRIPT = '''
import json, math, sys
import torch
from safetensors.torch import save_file
from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
from tests.tiny_models import synthetic_rows, timm_model

out = sys.argv[1]
rows = synthetic_rows(16, seed=0, missing=0.0)
rows[6]["pixel_values"][0, 3, :5] = math.nan  # batches of 2 go to the processes in turn: step 2, process 1 only
args = MultiTaskTrainingArguments(output_dir=out, report_to=[], disable_tqdm=True, save_strategy="no", seed=0,
                                  per_device_train_batch_size=2, max_steps=3, learning_rate=1e-2, logging_steps=1,
                                  train_sampling_strategy="sequential", nonfinite_policy="skip")
trainer = MultiTaskTrainer(model=timm_model(), args=args, train_dataset=rows)
trainer.train()
rank = trainer.args.process_index
state = {k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}
save_file(state, f"{out}/rank{rank}.safetensors")
with open(f"{out}/rank{rank}.json", "w") as handle:
    json.dump({"world_size": trainer.args.world_size, "skipped": trainer.nonfinite_guard.skipped_steps}, handle)
'''


@pytest.mark.slow
@requires_accelerate
def test_two_processes_skip_the_same_step(tmp_path):
    """A real 2-process `accelerate launch` (gloo, CPU): a NaN row on one process makes both skip the same step."""
    script = tmp_path / "ddp_nonfinite.py"
    script.write_text(DDP_SCRIPT)
    run = accelerate_launch([str(script), str(tmp_path)], tmp_path).check()
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in reports] == [2, 2]
    assert [r["skipped"] for r in reports] == [[2], [2]]
    assert "input 'pixel_values'" in run.stderr and "an input on another process" in run.stderr
    weights = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    for key in weights[0]:
        if weights[0][key].is_floating_point():
            assert torch.isfinite(weights[0][key]).all() and torch.isfinite(weights[1][key]).all(), key
        if "running_" not in key and "num_batches_tracked" not in key:  # DDP broadcasts BatchNorm stats each forward
            assert torch.equal(weights[0][key], weights[1][key]), key  # the processes never diverged


def test_gradient_check_is_exact_and_leaves_gradients_unchanged():
    from hf_mtl.nonfinite import gradients_nonfinite

    grads = [torch.randn(5, 3), torch.randn(7), torch.full((2,), 1e30)]  # huge but finite: a 2-norm would overflow to inf
    before = [g.clone() for g in grads]
    assert not gradients_nonfinite(grads).item()
    assert all(torch.equal(a, b) for a, b in zip(before, grads))
    for bad in (float("nan"), float("inf"), -float("inf")):
        grads[1][4] = bad
        assert gradients_nonfinite(grads).item()
        grads[1][4] = 0.0
    assert gradients_nonfinite([torch.tensor([0.0, float("nan")], dtype=torch.float64)]).item()
