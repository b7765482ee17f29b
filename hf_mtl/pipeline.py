"""Prediction: raw inputs → per-sample, per-task decoded outputs, as a function and as a transformers pipeline.

Decoding (thresholds, top-k, values) is each task type's ``TaskType.decode``; preprocessing is
``hf_mtl.preprocessing``. This module only batches, runs the model without gradients and puts the pieces together,
so ``model.predict(...)`` and ``pipeline("multi-task-classification", ...)`` return the same structure.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import Pipeline

from .preprocessing import cap_text_length, preprocess
from .tasks import TaskSpec

logger = logging.getLogger(__name__)

PIPELINE_TASK = "multi-task-classification"
"""The transformers pipeline task registered by hf_mtl (``pipeline(PIPELINE_TASK, model=...)``)."""


FUNCTIONS_TO_APPLY = (None, "default")
"""``function_to_apply`` values the pipeline takes: each task's activation is part of its type (sigmoid for
multilabel / binary, softmax for multiclass, none for regression), so transformers' "sigmoid" / "softmax" / "none"
switches would contradict its thresholds and metrics and are refused."""


def decode_logits(
    specs: Sequence[TaskSpec],
    logits: Mapping[str, torch.Tensor],
    top_k: int | None = 1,
    threshold: float | None = None,
) -> list[dict[str, Any]]:
    """Batched logits ``{task: (batch, n)}`` → one ``{task: decoded}`` dict per sample (tasks in config order).

    multilabel: ``{"labels": [names over their thresholds], "scores": {name: probability}}``;
    binary: ``{"label", "score"}``; multiclass: ``{"label", "score", "top_k": [{"label", "score"}, ...]}``;
    regression: ``{"value"}`` (or ``{"values": {name: value}}`` for several outputs).
    ``top_k=None`` lists every class (as in transformers' classification pipelines); ``threshold`` replaces the
    thresholds of every multilabel / binary task for this call.
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1, or None for every class, got {top_k!r}")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a probability in [0, 1] (multilabel / binary tasks), got {threshold!r}")
        specs = [
            dataclasses.replace(spec, thresholds=[float(threshold)] * spec.output_size)
            if spec.task_type.uses_thresholds else spec
            for spec in specs
        ]
    missing = [spec.name for spec in specs if spec.name not in logits]
    if missing:
        raise ValueError(f"the model returned no logits for tasks {missing}")
    scores = {spec.name: spec.task_type.activate(spec, logits[spec.name].detach().float().cpu()) for spec in specs}
    batch = next(iter(scores.values())).shape[0] if scores else 0
    return [
        {
            spec.name: spec.task_type.decode(spec, scores[spec.name][i], top_k=top_k or spec.output_size)
            for spec in specs
        }
        for i in range(batch)
    ]


def _is_single(inputs: Any) -> bool:
    """One input (a text, an image, a path, one array) rather than a list of them."""
    if isinstance(inputs, (str, Image.Image)) or hasattr(inputs, "__fspath__"):
        return True
    if isinstance(inputs, dict):  # an undecoded datasets Image() / Audio() cell
        return True
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        return inputs.ndim <= 3
    return False


def _to_model(encoded: Mapping[str, torch.Tensor], model: Any, device: bool = True) -> dict[str, torch.Tensor]:
    """Floating inputs in the model's dtype (a bf16 model gets bf16 pixels), all on its device; ids stay integers."""
    out = {}
    for name, value in encoded.items():
        if value.is_floating_point():
            value = value.to(model.dtype)
        out[name] = value.to(model.device) if device else value
    return out


def predict(
    model: Any,
    inputs: Any,
    *,
    processor: Any = None,
    top_k: int | None = 1,
    batch_size: int = 32,
    threshold: float | None = None,
) -> list[dict[str, Any]] | dict[str, Any]:
    """Predict every task of ``model`` for raw ``inputs``; see [`MultiTaskModel.predict`]."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            processor = cap_text_length(processor if processor is not None else model.get_processor(), model.config)
            return predict_with(
                lambda encoded: model(**_to_model(encoded, model)).logits, model.task_specs, processor, inputs,
                top_k=top_k, batch_size=batch_size, threshold=threshold,
            )
    finally:
        model.train(was_training)


def predict_with(
    logits_fn: Callable[[dict[str, torch.Tensor]], Mapping[str, torch.Tensor]],
    specs: Sequence[TaskSpec],
    processor: Any,
    inputs: Any,
    *,
    top_k: int | None = 1,
    batch_size: int = 32,
    threshold: float | None = None,
) -> list[dict[str, Any]] | dict[str, Any]:
    """Preprocess ``inputs`` in batches, get ``{task: logits}`` from ``logits_fn`` (a PyTorch model, an ONNX
    session) and decode them: the one prediction loop behind every runtime."""
    single = _is_single(inputs)
    items = [inputs] if single else list(inputs)
    if not items:
        return []
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    results: list[dict[str, Any]] = []
    for start in range(0, len(items), batch_size):
        encoded = preprocess(processor, items[start : start + batch_size], first_index=start)  # errors name input i
        results.extend(decode_logits(specs, logits_fn(encoded), top_k=top_k, threshold=threshold))
    return results[0] if single else results


class MultiTaskClassificationPipeline(Pipeline):
    """``pipeline("multi-task-classification", model=...)``: the same output as [`MultiTaskModel.predict`].

    The processor is the one saved with the model (image processor or tokenizer), loaded at the model's revision;
    pass ``image_processor=``/``tokenizer=``/``feature_extractor=``/``processor=`` to override it.
    """

    # transformers' generic loaders do not know hf_mtl's processors; __init__ loads the right one itself.
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False
    _load_video_processor = False

    def __init__(self, model: Any, *args: Any, processor: Any = None, **kwargs: Any) -> None:
        given = processor or kwargs.get("tokenizer") or kwargs.get("image_processor") or kwargs.get("feature_extractor")
        self.mtl_processor = cap_text_length(given if given is not None else model.get_processor(), model.config)
        from transformers.feature_extraction_utils import FeatureExtractionMixin
        from transformers.image_processing_utils import BaseImageProcessor
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase

        # Pipeline batching pads with these: hand the processor over under the name Pipeline expects.
        for name, kind in (
            ("tokenizer", PreTrainedTokenizerBase),
            ("image_processor", BaseImageProcessor),
            ("feature_extractor", FeatureExtractionMixin),
        ):
            if isinstance(self.mtl_processor, kind):
                kwargs[name] = self.mtl_processor
                break
        super().__init__(model, *args, **kwargs)
        self.model.eval()  # a pipeline only infers: dropout off, batch-norm statistics frozen

    def _sanitize_parameters(
        self, top_k: int | None | str = "", threshold: float | None = None, function_to_apply: Any = None, **kwargs: Any
    ):
        """``top_k`` (``None``: every class), ``threshold`` (multilabel / binary) and ``function_to_apply`` mean what
        they mean in transformers' text / image classification pipelines; any other argument is an error, not
        silently ignored."""
        if kwargs:
            raise ValueError(
                f"the multi-task pipeline takes no argument(s) {sorted(kwargs)}; it takes top_k (None: every class), "
                "threshold (multilabel / binary tasks) and batch_size"
            )
        if function_to_apply not in FUNCTIONS_TO_APPLY:
            own = ", ".join(f"{s.name}: {s.task_type.activation_name}" for s in self.model.task_specs)
            raise ValueError(
                f"function_to_apply={function_to_apply!r}: each task applies the function of its type ({own}), which "
                "its thresholds and metrics assume; for raw logits call the model itself"
            )
        postprocess_params: dict[str, Any] = {}
        if top_k != "":
            decode_logits([], {}, top_k=top_k)  # validates
            postprocess_params["top_k"] = top_k
        if threshold is not None:
            decode_logits([], {}, threshold=threshold)
            postprocess_params["threshold"] = threshold
        return {}, {}, postprocess_params

    def preprocess(self, inputs: Any) -> dict[str, torch.Tensor]:
        return _to_model(preprocess(self.mtl_processor, [inputs]), self.model, device=False)

    def _forward(self, model_inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return dict(self.model(**model_inputs).logits)

    def postprocess(
        self, model_outputs: dict[str, torch.Tensor], top_k: int | None = 1, threshold: float | None = None
    ) -> dict[str, Any]:
        return decode_logits(self.model.task_specs, model_outputs, top_k=top_k, threshold=threshold)[0]


def register_pipeline() -> None:
    """Register the ``multi-task-classification`` task with transformers (done on ``import hf_mtl``)."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if PIPELINE_TASK in PIPELINE_REGISTRY.supported_tasks:
        return
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=MultiTaskClassificationPipeline, pt_model=AutoModel, type="multimodal"
    )
