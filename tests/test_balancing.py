"""Task balancing: pos_weight from present labels, and every dynamic strategy trains a 2-task toy without NaN."""

from __future__ import annotations

import os

import datasets
import pytest
import torch

from hf_mtl import MultiTaskModel, TaskSpec
from hf_mtl.balancing import (
    BALANCERS,
    DynamicWeightAverage,
    GradNorm,
    RandomLossWeighting,
    UncertaintyWeighting,
    apply_pos_weight,
    build_balancer,
    compute_pos_weight,
)
from hf_mtl.trainer import MultiTaskTrainer
from hf_mtl.training_args import MultiTaskTrainingArguments
from tests.tiny_models import timm_model

TWO_TASKS = [
    {"name": "big", "type": "regression"},  # large-scale targets: large loss
    {"name": "small", "type": "binary"},
]


def test_pos_weight_counts_present_labels_only():
    specs = [TaskSpec(name="tags", type="multilabel", labels=["a", "b", "c"]), TaskSpec(name="flag", type="binary")]
    rows = [
        {"tags": [1, 0, None], "flag": 1},
        {"tags": [0, 0, None], "flag": None},
        {"tags": [0, None, None], "flag": 0},
        {"tags": None, "flag": 0},
    ]
    weights = compute_pos_weight(rows, specs)
    assert weights == {"tags": [2.0, 1.0, 1.0], "flag": [2.0]}  # b: no positives → 1.0; c: nothing present → 1.0
    assert compute_pos_weight(rows * 1, specs, max_weight=1.5)["tags"][0] == 1.5
    ds = datasets.Dataset.from_list(rows)
    assert compute_pos_weight(ds, specs) == weights
    model = timm_model()
    apply_pos_weight(model, {"tags": weights["tags"]})
    assert model.config.get_task("tags").pos_weight == [2.0, 1.0, 1.0]


def test_uncertainty_weights_fall_for_the_task_with_the_larger_loss():
    specs = [TaskSpec.from_dict(t) for t in TWO_TASKS]
    balancer = UncertaintyWeighting(specs)
    opt = torch.optim.SGD(balancer.parameters(), lr=0.1)
    for _ in range(200):
        losses = {"big": torch.tensor(10.0), "small": torch.tensor(0.1)}
        opt.zero_grad()
        balancer.combine(losses).backward()
        opt.step()
    w = balancer.current_weights()
    assert w["big"] == pytest.approx(0.1, rel=0.1) and w["small"] == pytest.approx(10.0, rel=0.2)  # → 1 / L_t


def test_dwa_gives_more_weight_to_the_task_whose_loss_falls_slower():
    specs = [TaskSpec.from_dict(t) for t in TWO_TASKS]
    balancer = DynamicWeightAverage(specs, temperature=1.0, period=2)
    for step in range(6):
        balancer.combine({"big": torch.tensor(1.0), "small": torch.tensor(0.5**step)})  # small falls fast
        balancer.step()
    w = balancer.current_weights()
    assert w["big"] > w["small"] and sum(w.values()) == pytest.approx(2.0)


def test_gradnorm_raises_the_weight_of_the_task_with_small_gradients():
    specs = [TaskSpec.from_dict(t) for t in TWO_TASKS]
    balancer = GradNorm(specs, alpha=0.0)  # alpha 0: equalise gradient norms
    opt = torch.optim.SGD(balancer.parameters(), lr=0.05)
    z = torch.randn(8, 4, requires_grad=True)
    for _ in range(50):
        losses = {"big": (10 * z).pow(2).mean(), "small": (0.1 * z).pow(2).mean()}
        opt.zero_grad()
        balancer.combine(losses, features=z).backward()
        opt.step()
        balancer.step()
    w = balancer.current_weights()
    assert w["small"] > w["big"] and sum(w.values()) == pytest.approx(2.0)


def test_rlw_draws_positive_weights_summing_to_task_count():
    balancer = RandomLossWeighting([TaskSpec.from_dict(t) for t in TWO_TASKS], seed=0)
    first = balancer.current_weights()
    balancer.step()
    assert balancer.current_weights() != first and sum(first.values()) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="unknown task_balancing 'famous'"):
        build_balancer("famous", [TaskSpec.from_dict(t) for t in TWO_TASKS])


def _toy_rows(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        x = torch.randn(3, 16, 16, generator=g)
        m = float(x.mean())
        rows.append({"pixel_values": x, "big": 400.0 * m if i % 3 else None, "small": int(m > 0) if i % 4 else None})
    return rows


@pytest.mark.parametrize("strategy", sorted(set(BALANCERS) - {"static"}))
def test_each_strategy_trains_a_two_task_toy_and_logs_weights(tmp_path, strategy):
    model: MultiTaskModel = timm_model(tasks=TWO_TASKS)
    kwargs = {"dwa": {"period": 2}, "gradnorm": {"alpha": 1.0}}.get(strategy)
    args = MultiTaskTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=4,
        logging_steps=2, learning_rate=1e-3, report_to=[], save_strategy="no", use_cpu=True,
        task_balancing=strategy, task_balancing_kwargs=kwargs, task_balancing_lr=0.2, seed=0,
        standardize_targets=False,  # keep the regression task's large raw loss scale: what the balancers must handle
    )
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(_toy_rows()).with_format("torch"))
    initial = trainer.task_balancer.current_weights()
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "task_weight_big" in entry]
    assert len(logged) == 2
    for entry in trainer.state.log_history:
        for key, value in entry.items():
            if isinstance(value, float):
                assert value == value and abs(value) != float("inf"), (key, value)  # no NaN / inf
    final = trainer.task_balancer.current_weights()
    assert final != initial, "the strategy never changed its weights"
    if strategy == "uncertainty":
        assert final["big"] < final["small"]  # the large-loss regression task is weighted down
    names = {n for n, _ in model.named_parameters()}
    assert not any("log_vars" in n or "task_weights" in n for n in names)  # learnable weights stay out of the model


def test_validation_runs_before_training(tmp_path):
    rows = _toy_rows(8)
    rows[5]["small"] = "maybe"
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True, max_steps=1)
    with pytest.raises(ValueError, match=r"task 'small', column 'small', row 5: unknown label name 'maybe'"):
        MultiTaskTrainer(model=timm_model(tasks=TWO_TASKS), args=args, train_dataset=rows)


def test_balancer_state_is_checkpointed_and_restored_on_resume(tmp_path):
    def trainer(max_steps):
        args = MultiTaskTrainingArguments(
            output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=max_steps, save_steps=2,
            report_to=[], use_cpu=True, task_balancing="dwa", task_balancing_kwargs='{"period": 1}', seed=0,
        )
        return MultiTaskTrainer(model=timm_model(tasks=TWO_TASKS), args=args, train_dataset=_toy_rows(16))

    first = trainer(3)
    first.train()
    saved = {k: v.clone() for k, v in first.task_balancer.state_dict().items()}
    assert (tmp_path / "checkpoint-3" / "task_balancer.safetensors").is_file()
    assert int(saved["steps"]) == 3 and saved["weights"].sum() == pytest.approx(2.0)
    resumed = trainer(5)
    assert int(resumed.task_balancer.steps) == 0
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    state = resumed.task_balancer.state_dict()
    assert int(state["steps"]) == 5  # continued from 3, not restarted from 0
    # with period 1, `previous` after step 5 is the mean loss of step 4: the restored `last` moved on by one period
    assert torch.isfinite(state["previous"]).all() and not torch.equal(state["last"], saved["last"])


@pytest.mark.parametrize("strategy", ["uncertainty", "dwa"])
def test_balancing_is_exact_under_gradient_accumulation(tmp_path, strategy):
    """2 SGD steps of 8 rows equal 2 steps of 4 x 2 accumulated rows: model weights and balancer state alike."""
    from tests.test_trainer import NO_DROPOUT, _text_rows
    from tests.tiny_models import bert_model

    rows = _text_rows(16, seed=5)
    results = []
    for batch, accumulation in ((8, 1), (2, 4)):
        model = bert_model(**NO_DROPOUT)
        args = MultiTaskTrainingArguments(
            output_dir=str(tmp_path / f"ga{accumulation}"), per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation, max_steps=3, learning_rate=0.3, optim="sgd",
            lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0, report_to=[], save_strategy="no",
            use_cpu=True, seed=0, data_seed=0, disable_tqdm=True, task_balancing=strategy,
            task_balancing_kwargs={"period": 1} if strategy == "dwa" else None, task_balancing_lr=0.5,
        )
        trainer = MultiTaskTrainer(model=model, args=args, train_dataset=rows)
        trainer.train()
        results.append(({k: v.detach().clone() for k, v in model.state_dict().items()},
                        {k: v.detach().clone() for k, v in trainer.task_balancer.state_dict().items()}))
    (w_full, b_full), (w_ga, b_ga) = results
    assert b_full.keys() == b_ga.keys()
    weights = b_full["log_vars"] if strategy == "uncertainty" else b_full["weights"]
    assert not torch.allclose(weights, torch.zeros_like(weights) if strategy == "uncertainty" else torch.ones_like(weights))
    for key in b_full:
        torch.testing.assert_close(b_ga[key], b_full[key], rtol=1e-4, atol=1e-5, equal_nan=True)
    for key in w_full:
        torch.testing.assert_close(w_ga[key], w_full[key], rtol=1e-4, atol=1e-5)


def test_balancer_state_is_inside_the_checkpoint_before_it_is_published(tmp_path, monkeypatch):
    """The balancer's file is written into the staging folder, so the atomic rename publishes (and the checkpoint push
    uploads) it with the rest; a crash before the rename leaves no checkpoint without it."""
    from hf_mtl import checkpointing

    seen = []
    publish = checkpointing.publish_checkpoint

    def spy(staging, final):
        seen.append(sorted(os.listdir(staging)))
        return publish(staging, final)

    monkeypatch.setattr(checkpointing, "publish_checkpoint", spy)
    args = MultiTaskTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, save_steps=2, report_to=[],
        use_cpu=True, task_balancing="uncertainty", seed=0,
    )
    MultiTaskTrainer(model=timm_model(tasks=TWO_TASKS), args=args, train_dataset=_toy_rows(8)).train()
    assert len(seen) == 1 and "task_balancer.safetensors" in seen[0] and "trainer_state.json" in seen[0]
