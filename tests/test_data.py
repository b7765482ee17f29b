"""Collator, datasets features → task specs, label validation before training, mixing datasets with disjoint tasks."""

from __future__ import annotations

import math
from collections import Counter

import datasets
import pytest
import torch

from hf_mtl import TaskSpec
from hf_mtl.data import (
    MultiTaskDataCollator,
    mix_datasets,
    sampling_probabilities,
    task_specs_from_features,
    validate_labels,
)
from tests.tiny_models import MIXED_TASKS

SPECS = [TaskSpec.from_dict(t) for t in MIXED_TASKS]  # tags: multilabel a,b,c; kind: x,y,z; score; flag: no/yes


def _row(**labels):
    return {"pixel_values": torch.zeros(3, 4, 4), **labels}


def test_collator_mixes_none_nan_names_and_01():
    rows = [
        _row(tags=[1, 0, None], kind="y", score=1.5, flag="yes"),
        _row(tags=["a", "c"], kind=2, score=float("nan"), flag=0),
        _row(tags=None, kind=None, score=None, flag=None),
        _row(tags=[float("nan"), True, False], kind=1.0, score=-2, flag=True),
        _row(kind="x"),  # other task columns absent from this row: missing
    ]
    batch = MultiTaskDataCollator(SPECS)(rows)
    assert batch["pixel_values"].shape == (5, 3, 4, 4)
    labels = batch["labels"]
    M = -100.0
    assert labels["tags"].tolist() == [[1, 0, M], [1, 0, 1], [M, M, M], [M, 1, 0], [M, M, M]]
    assert labels["kind"].tolist() == [1, 2, -100, 1, 0] and labels["kind"].dtype == torch.long
    assert labels["score"].tolist() == [1.5, M, M, -2.0, M]
    assert labels["flag"].tolist() == [1.0, 0.0, M, 1.0, M]


def test_positive_names_with_known_labels_leave_unknown_labels_missing():
    rows = [
        _row(tags=["a"], tags_known=["a", "b"]),  # c was not annotated → missing, not negative
        _row(tags=[], tags_known=["c"]),  # c annotated negative, a/b missing
        _row(tags=["b"], tags_known=None),  # no known list: every label annotated
        _row(tags={"positive": ["c"], "known": ["c"]}),  # the same, as one dict value
    ]
    batch = MultiTaskDataCollator(SPECS[:1], known_label_columns={"tags": "tags_known"})(rows)
    assert batch["labels"]["tags"].tolist() == [[1, 0, -100], [-100, -100, 0], [0, 1, 0], [-100, -100, 1]]
    with pytest.raises(ValueError, match=r"task 'tags', column 'tags', batch row 0.*unknown label names \['d'\]"):
        MultiTaskDataCollator(SPECS[:1], known_label_columns={"tags": "tags_known"})([_row(tags=["a"], tags_known=["d"])])


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"kind": "w"}, r"task 'kind', column 'kind', row 2: unknown class 'w'"),
        ({"tags": [1, 0]}, r"task 'tags', column 'tags', row 2: label list has 2 entries but the task has 3 labels"),
        ({"tags": [1, 2, 0]}, r"task 'tags', column 'tags', row 2: label value 2 is not 0, 1"),
        ({"tags": ["a", "zz"]}, r"task 'tags', column 'tags', row 2: unknown label names \['zz'\]"),
        ({"flag": "maybe"}, r"task 'flag', column 'flag', row 2: unknown label name 'maybe'"),
        ({"score": "high"}, r"task 'score', column 'score', row 2: regression value 'high'"),
    ],
)
def test_bad_labels_name_task_column_and_row(row, message):
    good = {"tags": None, "kind": None, "score": None, "flag": None}
    rows = [good, good, {**good, **row}]
    with pytest.raises(ValueError, match=message):
        validate_labels(rows, SPECS)
    ds = datasets.Dataset.from_list([{k: (v if k in row else None) for k, v in {**good, **row}.items()}] * 1)
    with pytest.raises(ValueError, match=message.replace("row 2", "row 0")):
        validate_labels(ds, SPECS)


def test_validation_reports_missing_column_and_counts_present_labels(caplog):
    ds = datasets.Dataset.from_dict({"tags": [[1, 0, None], None], "kind": ["x", "y"], "score": [None, None]})
    with pytest.raises(ValueError, match="task 'flag': the dataset has no label column 'flag'"):
        validate_labels(ds, SPECS)
    counts = validate_labels(ds.add_column("flag", [None, 1]), SPECS)
    assert counts == {"tags": 2, "kind": 2, "score": 0, "flag": 1}
    assert "task 'score' has no present label" in caplog.text


def test_task_specs_from_features_and_classlabel_decoding():
    features = datasets.Features(
        {
            "topics": datasets.Sequence(datasets.ClassLabel(names=["sport", "tech", "art"])),
            "sentiment": datasets.ClassLabel(names=["neg", "neu", "pos"]),
            "is_spam": datasets.Value("bool"),
            "rating": datasets.Value("float32"),
            "xy": datasets.Sequence(datasets.Value("float32"), length=2),
            "text": datasets.Value("string"),
        }
    )
    specs = task_specs_from_features(features, ["topics", "sentiment", "is_spam", "rating", "xy"])
    assert [(s.name, s.type, s.output_size) for s in specs] == [
        ("topics", "multilabel", 3), ("sentiment", "multiclass", 3), ("is_spam", "binary", 1),
        ("rating", "regression", 1), ("xy", "regression", 2),
    ]
    assert specs[0].labels == ["sport", "tech", "art"]
    with pytest.raises(ValueError, match="column 'text': cannot guess a task type"):
        task_specs_from_features(features, ["text"])

    ds = datasets.Dataset.from_dict(
        {"topics": [[0, 2], [], None], "sentiment": [2, -1, 0], "is_spam": [True, None, False],
         "rating": [1.0, None, 3.0], "xy": [[1.0, 2.0], None, [0.0, 0.5]], "text": ["a", "b", "c"]},
        features=features,
    )
    assert validate_labels(ds, specs) == {"topics": 6, "sentiment": 2, "is_spam": 2, "rating": 2, "xy": 4}
    rows = [{**ds[i], "input_ids": [1, 2]} for i in range(3)]
    labels = MultiTaskDataCollator(specs, features=ds.features)(rows)["labels"]
    assert labels["topics"].tolist() == [[1, 0, 1], [0, 0, 0], [-100, -100, -100]]  # [] = no positives, None = missing
    assert labels["sentiment"].tolist() == [2, -100, 0]  # ClassLabel -1 is missing


def test_sampling_probabilities():
    assert sampling_probabilities([100, 300]) == pytest.approx([0.25, 0.75])
    assert sampling_probabilities([100, 400], "temperature", 2.0) == pytest.approx([1 / 3, 2 / 3])
    assert sampling_probabilities([1, 1000], "uniform") == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="unknown sampling 'size'"):
        sampling_probabilities([1, 2], "size")


def test_mixing_datasets_with_disjoint_tasks_gives_expected_mix_and_missing_labels():
    n_a, n_b = 200, 600
    a = datasets.Dataset.from_dict({"x": [float(i) for i in range(n_a)], "kind": ["x"] * n_a})
    b = datasets.Dataset.from_dict({"x": [float(-i) for i in range(n_b)], "tags": [[0, 1, 0]] * n_b})
    mixed = mix_datasets({"a": a, "b": b}, seed=0, stopping_strategy="first_exhausted")
    assert set(mixed.column_names) == {"x", "kind", "tags", "source"}
    head = mixed.select(range(400))
    share_b = Counter(head["source"])["b"] / 400
    assert abs(share_b - 0.75) < 0.08  # proportional: 600 / 800
    for row in head:
        if row["source"] == "a":
            assert row["kind"] == "x" and row["tags"] is None
        else:
            assert row["kind"] is None and row["tags"] == [0, 1, 0]
    batch = MultiTaskDataCollator(SPECS[:2], input_names=("features",))(
        [{**row, "features": [row["x"]]} for row in head.select(range(32))]
    )
    kind_present = batch["labels"]["kind"] != -100
    tags_present = (batch["labels"]["tags"] != -100).all(dim=1)
    assert torch.equal(kind_present, ~tags_present)  # each row labels exactly one task; the other is missing
    assert not (batch["labels"]["tags"] == 0).all(dim=1).any()  # missing tags never turned into negatives

    temp = mix_datasets({"a": a, "b": b}, sampling="temperature", temperature=1e6, seed=1, stopping_strategy="first_exhausted")
    share_b = Counter(temp.select(range(300))["source"])["b"] / 300
    assert abs(share_b - 0.5) < 0.1  # a huge temperature is uniform sampling

    with pytest.raises(ValueError, match="column 'kind' has feature"):
        mix_datasets({"a": a, "c": datasets.Dataset.from_dict({"x": [1.0], "kind": [1]})})
    assert math.isclose(sum(sampling_probabilities([len(a), len(b)], "temperature", 3.0)), 1.0)


def test_mixing_iterable_datasets_needs_probabilities_and_fills_missing_tasks():
    a = datasets.Dataset.from_dict({"x": [1.0] * 20, "kind": ["x"] * 20}).to_iterable_dataset()
    b = datasets.Dataset.from_dict({"x": [2.0] * 20, "score": [0.5] * 20}).to_iterable_dataset()
    with pytest.raises(ValueError, match="pass `probabilities`"):
        mix_datasets({"a": a, "b": b})
    mixed = mix_datasets({"a": a, "b": b}, probabilities=[0.5, 0.5], seed=0, stopping_strategy="first_exhausted")
    rows = list(mixed.take(20))
    assert {r["source"] for r in rows} == {"a", "b"}
    for row in rows:
        assert (row["kind"] is None) == (row["source"] == "b") and (row["score"] is None) == (row["source"] == "a")


def test_binary_classlabel_override():
    features = datasets.Features({"spam": datasets.ClassLabel(names=["ham", "spam"]),
                                  "kind": datasets.ClassLabel(names=["a", "b", "c"])})
    (spec,) = task_specs_from_features(features, ["spam"], types={"spam": "binary"})
    assert spec.type == "binary" and spec.labels == ["ham", "spam"]
    with pytest.raises(ValueError, match="column 'kind': a binary task needs a ClassLabel with 2 names"):
        task_specs_from_features(features, ["kind"], types={"kind": "binary"})
    labels = MultiTaskDataCollator([spec], features=features)([{"spam": 1, "features": [0.0]}, {"spam": -1, "features": [0.0]}])
    assert labels["labels"]["spam"].tolist() == [1.0, -100.0]
