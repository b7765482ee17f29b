"""Task affinity by lookahead: tasks that share a target help each other more than an unrelated task helps them."""

from __future__ import annotations

import numpy as np
import torch

from hf_mtl import TaskSpec
from hf_mtl.advise.affinity import feature_task_affinity, suggest_grouping


def shared_target_problem(n: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    shared = x[:, :4].sum(1)
    unrelated = torch.tanh(x[:, 8:12]).prod(1) * 4
    labels = {
        "a": shared + 0.1 * torch.randn(n, generator=g),
        "b": shared + 0.1 * torch.randn(n, generator=g),  # the same target, its own noise
        "c": unrelated + 0.1 * torch.randn(n, generator=g),
    }
    specs = [TaskSpec(name="a", type="regression"), TaskSpec(name="b", type="regression"),
             TaskSpec(name="c", type="regression")]
    return x, labels, specs


def test_shared_target_pair_has_higher_affinity_than_unrelated_task():
    x, labels, specs = shared_target_problem()
    result = feature_task_affinity(x, labels, specs, steps=100, batch_size=64, trunk_width=32, seed=0)
    z = np.array(result.matrix)
    a, b, c = 0, 1, 2
    assert result.steps == 100 and result.tasks == ["a", "b", "c"]
    assert z[a, b] > max(z[c, b], 0) and z[b, a] > max(z[c, a], 0)
    assert min(z[a, b], z[b, a]) > max(z[a, c], z[b, c])
    assert any(set(group) >= {"a", "b"} for group in result.groups)


def test_missing_labels_are_skipped_not_counted_as_zero_loss():
    x, labels, specs = shared_target_problem(seed=1)
    labels["c"] = torch.full_like(labels["c"], float("nan"))  # no label of c anywhere
    result = feature_task_affinity(x, labels, specs, steps=10, trunk_width=16)
    z = np.array(result.matrix)
    assert np.all(np.isfinite(z)) and z[2].tolist() == [0.0, 0.0, 0.0] and z[:, 2].tolist() == [0.0, 0.0, 0.0]


def test_grouping_maximises_affinity_inside_groups():
    names = ["a", "b", "c", "d"]
    z = np.array([[0, 0.3, -0.2, 0.0], [0.2, 0, -0.1, 0.0], [-0.3, -0.2, 0, 0.1], [0.0, 0.0, 0.1, 0]])
    groups, score = suggest_grouping(z, names)
    assert groups == [["a", "b"], ["c", "d"]] and score == np.float64(0.3 + 0.2 + 0.1 + 0.1)
    groups, _ = suggest_grouping(np.full((3, 3), 0.1), ["x", "y", "z"])
    assert groups == [["x", "y", "z"]]
    # above the exact limit: greedy merging still joins the helpful pairs
    big = np.full((12, 12), -0.1)
    for i in range(0, 12, 2):
        big[i, i + 1] = big[i + 1, i] = 0.5
    groups, _ = suggest_grouping(big, [f"t{i}" for i in range(12)])
    assert sorted(map(sorted, groups)) == sorted([[f"t{i}", f"t{i + 1}"] for i in range(0, 12, 2)])
