"""Config validation: bad task lists fail on construction with an error that names the task."""

from __future__ import annotations

import pytest

from hf_mtl import MultiTaskConfig, TaskSpec


def _config(tasks, **kwargs):
    kwargs = {"backbone": "test_efficientnet", "backbone_library": "timm", **kwargs}
    return MultiTaskConfig(tasks=tasks, **kwargs)


def test_duplicate_task_names_are_rejected():
    tasks = [{"name": "tags", "type": "multilabel", "labels": ["a"]}, {"name": "tags", "type": "regression"}]
    with pytest.raises(ValueError, match="duplicate task names.*tags"):
        _config(tasks)


def test_empty_label_list_names_the_task():
    with pytest.raises(ValueError, match="task 'colour'.*empty"):
        _config([{"name": "colour", "type": "multilabel", "labels": []}])


def test_unknown_task_type_names_the_task_and_the_choices():
    with pytest.raises(ValueError, match="task 'colour'.*unknown task type 'softmax'.*multiclass"):
        _config([{"name": "colour", "type": "softmax", "labels": ["red", "blue"]}])


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"name": "kind", "type": "multiclass", "labels": ["only"]}, "at least 2 classes"),
        ({"name": "tags", "type": "multilabel"}, "needs `labels`"),
        ({"name": "tags", "type": "multilabel", "labels": ["a", "a"]}, "duplicate label names"),
        ({"name": "tags", "type": "multilabel", "labels": ["a", "b"], "pos_weight": [1.0]}, "pos_weight has 1"),
        ({"name": "tags", "type": "multilabel", "labels": ["a"], "pos_weight": [-1.0]}, "finite and > 0"),
        ({"name": "tags", "type": "multilabel", "labels": ["a"], "colour": 1}, "unknown keys \\['colour'\\]"),
        ({"name": "flag", "type": "binary", "labels": ["a", "b", "c"]}, "binary task has one output"),
        ({"name": "score", "type": "regression", "thresholds": [0.5]}, "do not apply to regression"),
        ({"name": "2bad", "type": "regression"}, "identifier"),
        ({"name": "tags", "type": "multilabel", "labels": ["a"], "dropout": 1.5}, "dropout"),
        ({"name": "tags", "type": "multilabel", "labels": ["a"], "loss_weight": -1}, "loss_weight"),
    ],
)
def test_invalid_task_specs(task, message):
    with pytest.raises(ValueError, match=message):
        _config([task])


def test_bad_backbone_settings():
    with pytest.raises(ValueError, match="backbone_library"):
        _config([{"name": "s", "type": "regression"}], backbone_library="keras")
    with pytest.raises(ValueError, match="pooling"):
        _config([{"name": "s", "type": "regression"}], pooling="max")


def test_config_round_trips_through_dict_and_keeps_task_order(tmp_path):
    tasks = [
        {"name": "zeta", "type": "regression"},
        {"name": "alpha", "type": "multilabel", "labels": ["x", "y"], "hidden_sizes": [8], "pos_weight": [2.0, 1.0]},
        {"name": "mid", "type": "multiclass", "labels": ["p", "q", "r"], "loss_weight": 0.5},
    ]
    config = _config(tasks)
    config.save_pretrained(tmp_path)
    loaded = MultiTaskConfig.from_pretrained(tmp_path)
    assert loaded.task_names == ["zeta", "alpha", "mid"]
    assert loaded.get_task("alpha") == TaskSpec.from_dict(tasks[1])
    assert loaded.get_task("alpha").output_size == 2
    assert loaded.get_task("mid").loss_weight == 0.5
    with pytest.raises(KeyError, match="no task named 'nope'"):
        loaded.get_task("nope")


def test_config_from_a_newer_hf_mtl_is_refused():
    with pytest.raises(ValueError, match="newer than the installed"):
        _config([{"name": "s", "type": "regression"}], hf_mtl_version="99.0.0")
