"""The one place tests build tiny randomly initialised backbones and toy data (fast, offline)."""

from __future__ import annotations

import torch
from transformers import BertConfig

from hf_mtl import MultiTaskConfig, MultiTaskModel

TIMM_BACKBONE = "test_efficientnet"
IMAGE_SIZE = 32

MIXED_TASKS = [
    {"name": "tags", "type": "multilabel", "labels": ["a", "b", "c"]},
    {"name": "kind", "type": "multiclass", "labels": ["x", "y", "z"], "hidden_sizes": [16]},
    {"name": "score", "type": "regression"},
    {"name": "flag", "type": "binary", "labels": ["no", "yes"]},
]


def tiny_bert_config(**overrides) -> BertConfig:
    kwargs = dict(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32,
    )
    return BertConfig(**{**kwargs, **overrides})


def timm_model(tasks=MIXED_TASKS, seed: int = 0, **config_kwargs) -> MultiTaskModel:
    torch.manual_seed(seed)
    return MultiTaskModel(MultiTaskConfig(backbone=TIMM_BACKBONE, backbone_library="timm", tasks=tasks, **config_kwargs))


def bert_model(tasks=MIXED_TASKS, seed: int = 0, pooling: str = "mean", **bert_overrides) -> MultiTaskModel:
    torch.manual_seed(seed)
    config = MultiTaskConfig(
        backbone="tiny-bert",
        backbone_library="transformers",
        backbone_config=tiny_bert_config(**bert_overrides).to_dict(),
        pooling=pooling,
        tasks=tasks,
    )
    return MultiTaskModel(config)


def random_labels(specs, batch: int, missing: float = 0.3, generator: torch.Generator | None = None):
    """Random labels for every task with a share of entries set to -100 (missing)."""
    g = generator or torch.Generator().manual_seed(0)
    labels = {}
    for spec in specs:
        n = spec.output_size
        if spec.type == "multiclass":
            value = torch.randint(0, n, (batch,), generator=g)
            drop = torch.rand(batch, generator=g) < missing
            labels[spec.name] = torch.where(drop, torch.full_like(value, -100), value)
        else:
            if spec.type == "regression":
                value = torch.randn(batch, n, generator=g)
            else:
                value = torch.randint(0, 2, (batch, n), generator=g).float()
            drop = torch.rand(batch, n, generator=g) < missing
            value = torch.where(drop, torch.full_like(value, -100.0), value)
            labels[spec.name] = value if spec.type == "multilabel" or n > 1 else value[:, 0]
    return labels


def images(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def synthetic_rows(n: int, seed: int = 0, missing: float = 0.2):
    """A learnable multi-task problem: every label is a simple function of the image's colour-channel means."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        means = torch.rand(3, generator=g) * 2 - 1
        pixel_values = means[:, None, None] + 0.3 * torch.randn(3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
        row = {
            "pixel_values": pixel_values,
            "tags": [float(m > 0) for m in means],
            "kind": int(torch.argmax(means)),
            "score": float(means.sum()),
            "flag": "yes" if means[0] > means[1] else "no",
        }
        drop = torch.rand(4, generator=g) < missing
        for key, dropped in zip(("tags", "kind", "score", "flag"), drop.tolist()):
            if dropped:
                row[key] = None
        if not drop[0] and torch.rand(1, generator=g) < missing:
            row["tags"][0] = None  # a single missing label inside a multilabel list
        rows.append(row)
    return rows


def synthetic_dataset(n: int, seed: int = 0, missing: float = 0.2):
    """``synthetic_rows`` as a ``datasets.Dataset`` (``pixel_values`` as tensors, label columns as Python values)."""
    from datasets import Dataset

    rows = [{**row, "pixel_values": row["pixel_values"].numpy()} for row in synthetic_rows(n, seed=seed, missing=missing)]
    return Dataset.from_list(rows).with_format("torch", columns=["pixel_values"], output_all_columns=True)
