"""Metrics on present labels: equal to scikit-learn on the present entries, offline evaluate modules, thresholds."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

from hf_mtl import TaskSpec
from hf_mtl.metrics import (
    apply_thresholds,
    best_threshold,
    build_compute_metrics,
    compute_task_metrics,
    load_metric,
    metric_path,
    per_label_metrics,
    tune_thresholds,
)
from tests.multiprocess import TIMEOUT
from tests.tiny_models import MIXED_TASKS, timm_model

SPECS = {t["name"]: TaskSpec.from_dict(t) for t in MIXED_TASKS}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _random_multilabel(seed, n=200, labels=3, missing=0.3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, labels)).astype(float)
    logits = rng.normal(size=(n, labels)) + 1.5 * (y - 0.5)
    y[rng.random((n, labels)) < missing] = -100
    y[rng.random((n, labels)) < 0.05] = np.nan
    return logits, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilabel_metrics_equal_sklearn_on_present_entries(seed):
    spec = SPECS["tags"]
    logits, y = _random_multilabel(seed)
    flat, per_label = compute_task_metrics(spec, logits, y)
    probs = _sigmoid(logits)
    for j, name in enumerate(spec.labels):
        keep = ~np.isnan(y[:, j]) & (y[:, j] != -100)
        yt, s = y[keep, j].astype(int), probs[keep, j]
        assert flat[f"tags_{name}_roc_auc"] == pytest.approx(skm.roc_auc_score(yt, s))
        assert flat[f"tags_{name}_average_precision"] == pytest.approx(skm.average_precision_score(yt, s))
        assert flat[f"tags_{name}_f1"] == pytest.approx(skm.f1_score(yt, s >= 0.5))
        assert flat[f"tags_{name}_accuracy"] == pytest.approx(skm.accuracy_score(yt, s >= 0.5))
    assert flat["tags_macro_roc_auc"] == pytest.approx(np.mean([flat[f"tags_{n}_roc_auc"] for n in spec.labels]))
    keep = ~np.isnan(y) & (y != -100)
    assert flat["tags_micro_roc_auc"] == pytest.approx(skm.roc_auc_score(y[keep].astype(int), probs[keep]))
    assert flat["tags_micro_f1"] == pytest.approx(skm.f1_score(y[keep].astype(int), probs[keep] >= 0.5))
    assert per_label["b"]["support"] == int((y[:, 1] == 1).sum())


def test_multiclass_binary_regression_equal_sklearn():
    rng = np.random.default_rng(0)
    kind_logits, kind = rng.normal(size=(100, 3)), rng.integers(0, 3, 100).astype(float)
    kind[rng.random(100) < 0.3] = -100
    flat, _ = compute_task_metrics(SPECS["kind"], kind_logits, kind)
    keep = kind != -100
    pred = kind_logits[keep].argmax(1)
    assert flat["kind_accuracy"] == pytest.approx(skm.accuracy_score(kind[keep], pred))
    assert flat["kind_macro_f1"] == pytest.approx(skm.f1_score(kind[keep], pred, average="macro"))
    assert flat["kind_y_f1"] == pytest.approx(skm.f1_score(kind[keep], pred, labels=[1], average=None)[0])

    flag_logits, flag = rng.normal(size=(100, 1)), rng.integers(0, 2, 100).astype(float)
    flag[:30] = -100
    flat, _ = compute_task_metrics(SPECS["flag"], flag_logits, flag)
    assert flat["flag_roc_auc"] == pytest.approx(skm.roc_auc_score(flag[30:], _sigmoid(flag_logits[30:, 0])))

    pred, y = rng.normal(size=(100, 1)), rng.normal(size=100)
    y[::4] = np.nan
    flat, _ = compute_task_metrics(SPECS["score"], pred, y)
    keep = ~np.isnan(y)
    assert flat["score_mae"] == pytest.approx(skm.mean_absolute_error(y[keep], pred[keep, 0]))
    assert flat["score_rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y[keep], pred[keep, 0])))


def test_label_without_positives_is_missing_not_crash_or_half():
    spec = SPECS["tags"]
    logits, y = _random_multilabel(3)
    y[:, 2] = np.where(y[:, 2] == 1, 0, y[:, 2])  # label c: no positives
    y[:, 1] = -100  # label b: nothing present
    flat, per_label = compute_task_metrics(spec, logits, y)
    for metric in ("roc_auc", "average_precision", "f1"):
        assert f"tags_c_{metric}" not in flat and per_label["c"][metric] is None
        assert f"tags_b_{metric}" not in flat
    assert "tags_b_accuracy" not in flat and per_label["b"]["count"] == 0
    assert "tags_c_accuracy" in flat  # accuracy is defined on negatives alone
    assert flat["tags_macro_roc_auc"] == pytest.approx(flat["tags_a_roc_auc"])  # macro over defined labels only
    all_missing, _ = compute_task_metrics(SPECS["kind"], np.zeros((4, 3)), np.full(4, -100))
    assert all_missing == {}


def test_trainer_compute_metrics_and_per_label_table():
    rng = np.random.default_rng(0)
    logits = {"tags": rng.normal(size=(50, 3)), "kind": rng.normal(size=(50, 3)), "score": rng.normal(size=(50, 1)),
              "flag": rng.normal(size=(50, 1))}
    labels = {"tags": rng.integers(0, 2, (50, 3)).astype(float), "kind": rng.integers(0, 3, 50),
              "score": rng.normal(size=50), "flag": rng.integers(0, 2, 50).astype(float)}
    compute = build_compute_metrics(list(SPECS.values()))
    from transformers import EvalPrediction

    out = compute(EvalPrediction(predictions=logits, label_ids=labels))
    for key in ("tags_macro_roc_auc", "tags_micro_f1", "tags_a_average_precision", "kind_accuracy", "kind_macro_f1",
                "score_mae", "score_rmse", "flag_roc_auc", "flag_f1"):
        assert isinstance(out[key], float), key
    assert set(compute.last.per_label) == set(SPECS)
    assert set(compute.last.per_label["tags"]["a"]) >= {"roc_auc", "average_precision", "f1", "accuracy"}
    table = per_label_metrics(list(SPECS.values()), logits, labels)
    assert table["tags"]["b"]["roc_auc"] == pytest.approx(out["tags_b_roc_auc"])
    quiet = build_compute_metrics(list(SPECS.values()), per_label=False)
    short = quiet((logits, labels))
    assert "tags_b_roc_auc" not in short and "kind_y_f1" not in short and short["tags_macro_roc_auc"] == out["tags_macro_roc_auc"]
    assert quiet.last.per_label == compute.last.per_label


@pytest.mark.slow
def test_evaluate_load_works_offline_by_path(tmp_path):
    code = (
        "import evaluate, json\n"
        f"m = evaluate.load({metric_path('multilabel')!r})\n"
        "r = m.compute(predictions=[[0.9, 0.2], [0.1, 0.7], [0.3, 0.1]], references=[[1, -100], [0, 1], [0, 0]])\n"
        "print(json.dumps([r['micro']['f1'], r['per_label']['1']['roc_auc']]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9",
           "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[1.0, 1.0]"
    metric = load_metric("regression")
    assert metric.compute(predictions=[1.0, 2.0], references=[2.0, float("nan")])["mae"] == pytest.approx(1.0)


def test_thresholds_improve_f1_when_best_threshold_is_far_from_half():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.integers(0, 2, (n, 2)).astype(float)
    # scores squeezed low: positives around 0.2, negatives around 0.05; 0.5 predicts nothing positive
    probs = np.clip(np.where(y == 1, 0.2, 0.05) + rng.normal(0, 0.04, (n, 2)), 1e-4, 1 - 1e-4)
    y[rng.random((n, 2)) < 0.2] = -100
    logits = np.log(probs / (1 - probs))
    spec = TaskSpec(name="tags", type="multilabel", labels=["p", "q"])
    before, _ = compute_task_metrics(spec, logits, y)
    tuned = tune_thresholds([spec], {"tags": logits}, {"tags": y})
    assert all(0.05 < t < 0.25 for t in tuned["tags"])
    spec_tuned = TaskSpec(name="tags", type="multilabel", labels=["p", "q"], thresholds=tuned["tags"])
    after, _ = compute_task_metrics(spec_tuned, logits, y)
    assert after["tags_macro_f1"] > before["tags_macro_f1"] + 0.5

    # precision / recall targets
    s, lab = probs[:, 0], y[:, 0]
    keep = lab != -100
    t_p = best_threshold(s, lab, "precision", 0.95)
    assert skm.precision_score(lab[keep], s[keep] >= t_p) >= 0.95
    t_r = best_threshold(s, lab, "recall", 0.99)
    assert skm.recall_score(lab[keep], s[keep] >= t_r) >= 0.99
    assert best_threshold(s, np.zeros_like(s)) is None  # no positive: nothing to tune
    with pytest.raises(ValueError, match="needs a target"):
        best_threshold(s, lab, "precision")


def test_thresholds_are_stored_in_config_and_used_by_metrics_and_decode(tmp_path):
    model = timm_model()
    apply_thresholds(model, {"tags": [0.1, 0.2, 0.3], "flag": [0.7]})
    assert model.config.get_task("tags").thresholds == [0.1, 0.2, 0.3]
    model.save_pretrained(tmp_path)
    from hf_mtl import MultiTaskModel

    reloaded = MultiTaskModel.from_pretrained(tmp_path)
    assert reloaded.config.get_task("flag").thresholds == [0.7]
    spec = reloaded.config.get_task("tags")
    import torch

    assert spec.task_type.decode(spec, torch.tensor([0.15, 0.15, 0.15]))["labels"] == ["a"]
    with pytest.raises(ValueError, match="2 entries but the task has 3 outputs"):
        apply_thresholds(model, {"tags": [0.1, 0.2]})
    with pytest.raises(ValueError, match="unknown tasks"):
        apply_thresholds(model, {"nope": [0.5]})
    compute = build_compute_metrics(reloaded)  # reads thresholds from the model at call time
    y = np.array([[1, 0, 0], [0, 0, 0]], dtype=float)
    logits = np.log(np.array([[0.15, 0.15, 0.15], [0.05, 0.05, 0.05]]) / (1 - np.array([[0.15] * 3, [0.05] * 3])))
    assert compute((({"tags": logits}), {"tags": y}))["tags_a_f1"] == pytest.approx(1.0)


def test_trainer_evaluate_reports_eval_task_metrics_and_tunes_thresholds(tmp_path):
    from hf_mtl.trainer import MultiTaskTrainer
    from hf_mtl.training_args import MultiTaskTrainingArguments
    from tests.tiny_models import synthetic_rows

    model = timm_model()
    rows = synthetic_rows(24, seed=1)
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=8, report_to=[], use_cpu=True)
    compute = build_compute_metrics(model)
    trainer = MultiTaskTrainer(model=model, args=args, eval_dataset=rows,
                               compute_metrics=compute)
    metrics = trainer.evaluate()
    for key in ("eval_tags_macro_roc_auc", "eval_tags_a_f1", "eval_kind_accuracy", "eval_kind_macro_f1",
                "eval_score_mae", "eval_flag_roc_auc"):
        assert key in metrics, key
    assert set(compute.last.per_label) == {"tags", "kind", "score", "flag"}
    thresholds = trainer.tune_thresholds()
    assert set(thresholds) == {"tags", "flag"} and len(thresholds["tags"]) == 3
    assert model.config.get_task("tags").thresholds == thresholds["tags"]
    assert trainer.evaluate()["eval_tags_macro_f1"] >= metrics["eval_tags_macro_f1"]  # tuned on this very set


def test_metric_modules_are_package_data():
    """The evaluate scripts are .py files loaded by path: pyproject's package-data must ship every one of them."""
    import fnmatch
    from pathlib import Path

    import hf_mtl

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["hf_mtl"]
    package = Path(hf_mtl.__file__).parent
    scripts = [p.relative_to(package).as_posix() for p in (package / "metrics").glob("*/*.py")]
    assert {"metrics/multilabel/multilabel.py", "metrics/multiclass/multiclass.py", "metrics/regression/regression.py"} <= set(scripts)
    for script in scripts:
        assert any(fnmatch.fnmatch(script, pattern.replace("**/", "*")) for pattern in patterns), script


def test_predictions_and_labels_without_a_trainer_feed_threshold_tuning():
    from hf_mtl.data import MultiTaskDataCollator
    from hf_mtl.metrics import predictions_and_labels
    from tests.tiny_models import synthetic_rows

    model = timm_model()
    rows = synthetic_rows(10, seed=2)
    logits, labels = predictions_and_labels(model, rows, batch_size=4)
    assert logits["tags"].shape == (10, 3) and logits["kind"].shape == (10, 3)
    expected = MultiTaskDataCollator(model.task_specs)(rows)["labels"]
    for name, value in expected.items():
        np.testing.assert_array_equal(labels[name], value.numpy())
    tuned = tune_thresholds(model, logits, labels)
    assert set(tuned) == {"tags", "flag"}
