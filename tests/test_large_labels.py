"""A multilabel task with 10,000 labels (product tags) builds, validates its labels, trains, evaluates and writes a
card, with per-row label encoding linear in the number of labels and a card that does not list every label."""

from __future__ import annotations

import time

import datasets
import numpy as np
import pytest

from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments, TaskSpec
from hf_mtl.chart import CARD_LABELS_PER_TASK, per_label_table
from hf_mtl.data import encode_labels, validate_labels
from hf_mtl.metrics import build_compute_metrics
from tests.tiny_models import timm_model

N_LABELS = 10_000


def _tag_rows(n: int, labels: list[str], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    common = labels[:8]  # a few frequent tags (with positives and negatives in a small eval set), the rest rare
    return [{"pixel_values": rng.standard_normal((3, 32, 32)).astype(np.float32),
             "tags": sorted({*rng.choice(common, 2, replace=False).tolist(), *rng.choice(labels, 3).tolist()})}
            for _ in range(n)]


@pytest.mark.slow
def test_ten_thousand_labels_validate_train_evaluate_and_card(tmp_path):
    labels = [f"tag_{i:05d}" for i in range(N_LABELS)]
    tasks = [{"name": "tags", "type": "multilabel", "labels": labels}]
    rows = _tag_rows(48, labels)
    train = datasets.Dataset.from_list(rows[:32])
    evaluation = datasets.Dataset.from_list(rows[32:])
    assert validate_labels(train, [TaskSpec.from_dict(tasks[0])])["tags"] == 32 * N_LABELS  # every label present
    bad = datasets.Dataset.from_list([{**rows[0], "tags": ["tag_00001", "no_such_tag"]}])
    with pytest.raises(ValueError, match=r"row 0: unknown label names \['no_such_tag'\]; known labels: .*10000 labels"):
        validate_labels(bad, [TaskSpec.from_dict(tasks[0])])
    model = timm_model(tasks)
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=8,
                                      per_device_eval_batch_size=16, report_to="none", save_strategy="no",
                                      use_cpu=True, learning_rate=0.01)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                               compute_metrics=build_compute_metrics(model))
    trainer.train()
    metrics = trainer.evaluate()
    assert "eval_tags_macro_roc_auc" in metrics and "eval_tags_micro_average_precision" in metrics
    per_label = trainer.last_per_label_metrics()["tags"]
    assert len(per_label) == N_LABELS  # every label in the metrics, defined or not
    columns, table = per_label_table(model.task_specs, {"tags": per_label})
    assert len(table) == CARD_LABELS_PER_TASK + 1 and table[-1]["label"].startswith(f"(+{N_LABELS - 40} more labels")
    trainer.create_model_card()
    card = (tmp_path / "out" / "README.md").read_text()
    assert card.count("| tags | tag_") == CARD_LABELS_PER_TASK and (tmp_path / "out" / "plots" / "eval_per_label.png").is_file()


def _encode_seconds(n_labels: int, rows: int = 200) -> float:
    labels = [f"t{i}" for i in range(n_labels)]
    spec = TaskSpec(name="tags", type="multilabel", labels=labels)
    data = [{"tags": {"positive": labels[i % n_labels: i % n_labels + 5], "known": labels[: n_labels // 2]}}
            for i in range(rows)]
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        encode_labels([spec], data)
        best = min(best, time.perf_counter() - start)
    return best


def test_label_encoding_is_linear_in_the_number_of_labels():
    """10x the labels costs about 10x (was 100x: a list lookup per label); generous bound for a loaded machine."""
    small, large = _encode_seconds(2_000), _encode_seconds(20_000)
    assert large / small < 30, (small, large)


def test_per_label_metrics_of_all_columns_equal_scikit_learn_per_label():
    """The vectorised per-label metrics (one sort per column) give scikit-learn's values, ties and missing included."""
    from hf_mtl.metrics.functional import binary_scores, binary_scores_columns

    rng = np.random.default_rng(0)
    for _ in range(20):
        n, width = int(rng.integers(1, 30)), int(rng.integers(1, 8))
        scores = np.round(rng.random((n, width)), int(rng.integers(1, 3)))  # coarse scores: many ties
        labels = (rng.random((n, width)) < rng.random()).astype(float)
        labels[rng.random((n, width)) < 0.3] = -100
        thresholds = rng.random(width)
        columns = binary_scores_columns(scores, labels, thresholds)
        for j in range(width):
            expected = binary_scores(scores[:, j], labels[:, j], thresholds[j])
            assert columns[j].keys() == expected.keys()
            for key, value in expected.items():
                assert (value is None and columns[j][key] is None) or columns[j][key] == pytest.approx(value, abs=1e-12)
