"""Plots of an evaluation (hf_mtl.chart) and the baselines they mark (TaskType.metric_baselines), and the modes of
the files a save writes."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from hf_mtl.chart import DIAGNOSTIC_PLOTS, PLOTS_DIR, metric_panels, reliability_bins, write_plots
from hf_mtl.metrics import evaluate_predictions
from hf_mtl.metrics.functional import binary_scores, multiclass_scores, ordinal_scores
from hf_mtl.safety import default_file_mode
from hf_mtl.tasks import TASK_TYPES, TaskSpec
from tests.tiny_models import MIXED_TASKS, random_labels, timm_model

TASKS = [*MIXED_TASKS, {"name": "grade", "type": "ordinal", "labels": ["low", "mid", "high"]}]


def _specs():
    return [TaskSpec.from_dict(t) for t in TASKS]


def _evaluation(n: int = 60, seed: int = 0):
    specs = _specs()
    g = torch.Generator().manual_seed(seed)
    labels = random_labels([s for s in specs if s.name != "grade"], n, generator=g)
    labels["grade"] = torch.randint(0, 3, (n,), generator=g)
    logits = {s.name: torch.randn(n, s.output_size, generator=g) for s in specs}
    return specs, evaluate_predictions(specs, logits, labels)


def test_every_task_type_names_a_plot_that_exists():
    assert {t.plot_kind for t in TASK_TYPES.values()} <= set(DIAGNOSTIC_PLOTS)


def test_baselines_are_what_the_metrics_give_a_trivial_predictor():
    """Each type's marks equal its own metrics computed on the trivial prediction they describe."""
    y = np.array([1, 0, 0, 1, 0, 0, 0, 1, -100, 0], dtype=np.float64)
    spec = TaskSpec("flag", "binary")
    marks = spec.task_type.metric_baselines(spec, y)
    constant = binary_scores(np.full(len(y), 0.7), y)  # constant scores: no ranking
    assert marks["roc_auc"] == constant["roc_auc"] == 0.5
    assert marks["average_precision"] == pytest.approx(constant["average_precision"])
    assert marks["f1"] == pytest.approx(binary_scores(np.ones(len(y)), y)["f1"])  # always positive
    assert marks["accuracy"] == pytest.approx(binary_scores(np.zeros(len(y)), y)["accuracy"])  # majority: negative

    classes = np.array([2, 2, 1, 2, 0, -100, 2, 1], dtype=np.float64)
    spec = TaskSpec("kind", "multiclass", labels=["a", "b", "c"])
    majority = np.tile([0.0, 0.0, 1.0], (len(classes), 1))
    scored = multiclass_scores(majority, classes)
    marks = spec.task_type.metric_baselines(spec, classes)
    assert marks == pytest.approx({"accuracy": scored["accuracy"], "macro_f1": scored["macro_f1"]})

    spec = TaskSpec("grade", "ordinal", labels=["low", "mid", "high"])
    grades = np.array([0, 1, 1, 2, 1, 0, -100], dtype=np.float64)
    scored = ordinal_scores(np.ones(len(grades)), grades, spec.label_names)  # always the median grade
    marks = spec.task_type.metric_baselines(spec, grades)
    assert marks["accuracy"] == pytest.approx(scored["accuracy"]) and marks["mae"] == pytest.approx(scored["mae"])
    assert marks["qwk"] == 0.0

    spec = TaskSpec("price", "regression", target_mean=[2.0], target_std=[1.0], target_median=[1.5])
    values = np.array([1.0, 2.0, np.nan, 4.0])
    marks = spec.task_type.metric_baselines(spec, values)
    assert marks == pytest.approx({"mae": np.mean([0.5, 0.5, 2.5]), "rmse": np.sqrt(np.mean([1.0, 0.0, 4.0]))})


def test_errors_get_a_panel_of_their_own():
    specs, evaluation = _evaluation()
    panels = metric_panels(specs, evaluation.metrics)
    by_task: dict[str, list] = {}
    for panel in panels:
        by_task.setdefault(panel["task"], []).append(panel)
    assert [p["range"] for p in by_task["score"]] == [None]  # MAE / RMSE in the targets' units
    grade = {tuple(m for m, _, _ in p["rows"]): p["range"] for p in by_task["grade"]}
    assert set(grade) == {("accuracy", "qwk"), ("mae",)} and grade[("mae",)] is None  # MAE in classes, apart
    assert grade[("accuracy", "qwk")][1] == 1.0
    assert all(p["range"] == (0.0, 1.0) for t in ("tags", "kind", "flag") for p in by_task[t])


def test_reliability_bins_of_a_calibrated_scorer():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    y[:100] = -100  # missing labels are left out
    bins = reliability_bins(p, y)
    assert bins["count"].sum() == p.size - 100
    assert float(bins["ece"]) < 0.02
    np.testing.assert_allclose(bins["observed"], bins["mean_predicted"], atol=0.03)


def test_write_plots_draws_one_diagnostic_per_task(tmp_path):
    specs, evaluation = _evaluation()
    history = [{"step": s, "loss": 1.0 / s, **{f"loss_{t.name}": 1.0 / s for t in specs}} for s in range(1, 6)]
    history.append({"step": 5, **{f"eval_{k}": v for k, v in evaluation.metrics.items()}})
    plots = write_plots(specs, tmp_path, evaluation=evaluation, histories=[("training", history)], split="test")
    files = dict((path, caption) for caption, path in plots)
    expected = {f"{PLOTS_DIR}/test_metrics.png", f"{PLOTS_DIR}/test_per_label.png",
                f"{PLOTS_DIR}/training_curves.png", *(f"{PLOTS_DIR}/test_{s.name}.png" for s in specs)}
    assert set(files) == expected
    assert files[f"{PLOTS_DIR}/test_kind.png"] == "kind: confusion matrix"
    assert files[f"{PLOTS_DIR}/test_grade.png"] == "grade: confusion matrix"
    assert files[f"{PLOTS_DIR}/test_tags.png"] == "tags: reliability diagram"
    assert files[f"{PLOTS_DIR}/test_flag.png"] == "flag: reliability diagram"
    assert files[f"{PLOTS_DIR}/test_score.png"] == "score: predicted vs true values"
    for path in files:
        with Image.open(tmp_path / path) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200


def test_saved_files_have_ordinary_modes(tmp_path):
    """safetensors >= 0.8 writes 0600 files (a renamed NamedTempFile); everything a save writes gets the umask's
    ordinary mode instead, under any umask."""
    model = timm_model()
    for umask in (0o022, 0o027):
        old = os.umask(umask)
        try:
            folder = tmp_path / f"umask{umask:o}"
            model.save_pretrained(folder)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
            assert modes == {"config.json": 0o666 & ~umask, "model.safetensors": 0o666 & ~umask}
            assert default_file_mode() == 0o666 & ~umask
        finally:
            os.umask(old)
