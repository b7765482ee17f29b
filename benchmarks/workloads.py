"""Synthetic workloads of the speed benchmarks: a model, random images and multilabel labels with missing entries.

Speed does not depend on what the pixels show, so the speed benchmarks use random data of the demo's shape; the
quality benchmarks (``classic_claims.py``) use real Fashion-MNIST images and real pretrained weights.
"""

from __future__ import annotations

from typing import Any

import torch

from hf_mtl import MISSING, MultiTaskConfig, MultiTaskModel


def multilabel_tasks(num_tasks: int, num_labels: int = 10) -> list[dict[str, Any]]:
    """``num_tasks`` multilabel tasks of ``num_labels`` labels each (the demo's task is one of them)."""
    return [
        {"name": f"task{i}", "type": "multilabel", "labels": [f"t{i}_l{j}" for j in range(num_labels)]}
        for i in range(num_tasks)
    ]


def build_model(backbone: str, tasks: list[dict[str, Any]], seed: int = 0) -> MultiTaskModel:
    """A randomly initialised timm-backbone model (weights do not change speed)."""
    torch.manual_seed(seed)
    return MultiTaskModel(MultiTaskConfig(backbone=backbone, backbone_library="timm", tasks=tasks))


def random_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def random_multilabel(n: int, num_labels: int, missing: float = 0.3, seed: int = 0) -> torch.Tensor:
    """0/1 labels with a share ``missing`` of entries set to ``MISSING`` (-100)."""
    g = torch.Generator().manual_seed(seed + 1)
    labels = torch.randint(0, 2, (n, num_labels), generator=g).float()
    drop = torch.rand(n, num_labels, generator=g) < missing
    return torch.where(drop, torch.full_like(labels, float(MISSING)), labels)


def user_rows(pixel_values: torch.Tensor, labels: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """Rows as a user hands them to ``MultiTaskTrainer``: one column per task, a list of 0/1/None per label."""
    rows = []
    for i in range(len(pixel_values)):
        row: dict[str, Any] = {"pixel_values": pixel_values[i]}
        for name, value in labels.items():
            row[name] = [None if v == MISSING else int(v) for v in value[i].tolist()]
        rows.append(row)
    return rows
