"""Regression targets are standardised with training statistics; predictions, metrics and cards stay in their units."""

from __future__ import annotations

import json

import datasets
import pytest
import torch

from hf_mtl import MultiTaskModel, MultiTaskTrainer, MultiTaskTrainingArguments, TaskSpec
from hf_mtl.data import standardize_regression_targets
from hf_mtl.metrics import MAIN_SCORE, build_compute_metrics
from hf_mtl.pipeline import decode_logits
from hf_mtl.scripts.train import format_metrics
from tests.tiny_models import timm_model

TASK = [{"name": "level", "type": "regression"}]


def _rows(n: int, seed: int) -> list[dict]:
    """Targets 1000 ± 0.5 that follow the image's mean brightness (learnable), 10% missing."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        m = float(torch.rand(1, generator=g)) * 2 - 1
        x = m + 0.3 * torch.randn(3, 16, 16, generator=g)
        rows.append({"pixel_values": x.numpy(), "level": None if i % 10 == 9 else 1000.0 + 0.5 * m})
    return rows


def _dataset(n: int, seed: int) -> datasets.Dataset:
    return datasets.Dataset.from_list(_rows(n, seed)).with_format("torch", columns=["pixel_values"],
                                                                   output_all_columns=True)


def test_spec_without_statistics_keeps_raw_scale_and_with_them_standardises():
    raw = TaskSpec("y", "regression")
    std = TaskSpec("y", "regression", target_mean=[1000.0], target_std=[0.5], target_median=[1000.0])
    logits, labels = torch.tensor([[0.0], [2.0]]), torch.tensor([1000.0, float("nan")])
    assert raw.task_type.activate(raw, logits).tolist() == [[0.0], [2.0]]
    assert std.task_type.activate(std, logits).tolist() == [[1000.0], [1001.0]]
    assert raw.task_type.loss_terms(raw, logits, labels)[0].item() == pytest.approx(1000.0**2)
    total, count = std.task_type.loss_terms(std, logits, labels)
    assert total.item() == pytest.approx(0.0) and count.item() == 1  # the NaN target is missing
    with pytest.raises(ValueError, match="target_mean and target_std together"):
        TaskSpec("y", "regression", target_mean=[1.0])
    with pytest.raises(ValueError, match="target_std entries must be > 0"):
        TaskSpec("y", "regression", target_mean=[1.0], target_std=[0.0])
    with pytest.raises(ValueError, match="regression tasks only"):
        TaskSpec("y", "binary", target_mean=[1.0], target_std=[1.0])


def test_statistics_come_from_present_training_values_once():
    model = timm_model(tasks=[{"name": "xy", "type": "regression", "num_outputs": 2}])
    rows = [{"xy": [1.0, 10.0]}, {"xy": [3.0, None]}, {"xy": None}, {"xy": [5.0, 30.0]}]
    stats = standardize_regression_targets(model, rows)
    spec = model.task_specs[0]
    assert spec.target_mean == pytest.approx([3.0, 20.0]) and spec.target_median == pytest.approx([3.0, 10.0])
    assert spec.target_std == pytest.approx([(8 / 3) ** 0.5, 10.0])
    assert stats["xy"]["target_mean"] == spec.target_mean
    assert standardize_regression_targets(model, [{"xy": [100.0, 100.0]}]) == {}  # kept: computed once


def test_large_offset_small_spread_beats_the_constant_predictor_and_reloads_in_original_units(tmp_path):
    train, evaluation = _dataset(256, seed=0), _dataset(128, seed=1)
    model = timm_model(tasks=TASK)
    args = MultiTaskTrainingArguments(
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=16, max_steps=200, learning_rate=3e-3,
        warmup_steps=20, report_to=[], save_strategy="no", use_cpu=True, seed=0, disable_tqdm=True,
    )
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                               compute_metrics=build_compute_metrics(model))
    spec = model.task_specs[0]
    assert spec.target_mean[0] == pytest.approx(1000.0, abs=0.1) and 0.2 < spec.target_std[0] < 0.4
    trainer.train()
    metrics = trainer.evaluate()
    assert metrics["eval_level_mae"] < 0.5 * metrics["eval_level_constant_mae"], metrics
    assert 0.15 < metrics["eval_level_constant_mae"] < 0.35  # the constant predictor in original units
    assert metrics[f"eval_{MAIN_SCORE}"] > 0.5  # skill over the constant: 1 - mae / constant_mae
    report = format_metrics(metrics, model.task_specs)
    assert "constant_mae=" in report and "mae=" in report

    trainer.save_model(str(tmp_path / "saved"))
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())["tasks"][0]
    assert saved["target_mean"] == spec.target_mean and saved["target_std"] == spec.target_std
    reloaded = MultiTaskModel.from_pretrained(str(tmp_path / "saved")).eval()
    batch = torch.stack([torch.as_tensor(r["pixel_values"]) for r in _rows(8, seed=2)])
    truth = [r["level"] for r in _rows(8, seed=2)]
    with torch.no_grad():
        values = [p["level"]["value"] for p in decode_logits(reloaded.task_specs, reloaded(pixel_values=batch).logits)]
    for value, target in zip(values, truth):
        if target is not None:
            assert abs(value - target) < 0.25, (values, truth)  # original units, not standardised ones


def test_model_card_shows_the_constant_predictor(tmp_path):
    model = timm_model(tasks=TASK)
    metrics = {"eval_level_mae": 0.1, "eval_level_rmse": 0.12, "eval_level_constant_mae": 0.25,
               "eval_level_constant_rmse": 0.29}
    from hf_mtl.modelcard import write_model_card

    card = write_model_card(model, tmp_path, metrics=metrics).read_text()
    assert "| level | constant_mae (baseline) | 0.2500 |" in card and "constant predictor" in card
    assert "constant_mae" not in card.split("---")[1]  # the model-index lists the model's own results only
