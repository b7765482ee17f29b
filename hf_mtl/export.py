"""ONNX export of a multi-task model, and prediction from the exported graph.

The graph takes the backbone's inputs (``pixel_values``, or ``input_ids`` / ``attention_mask`` / ...) with a dynamic
batch (and sequence) axis and has one output per task, named after the task: its logits. Activation and decoding stay
each task type's (``TaskType.activate`` / ``decode`` through ``hf_mtl.pipeline``), so [`OnnxMultiTaskModel.predict`]
returns what [`MultiTaskModel.predict`] returns, with the same thresholds from the saved config.

    hf-mtl export onnx outputs/fashion_grid_efficientnet            # writes outputs/fashion_grid_efficientnet/model.onnx
    hf-mtl predict outputs/fashion_grid_efficientnet image.png --onnx
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
DEFAULT_OPSET = 18
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EXPORTERS = ("dynamo", "torchscript")


class _TaskLogits(nn.Module):
    """Positional inputs → a tuple of per-task logits in config order (what an ONNX graph can return)."""

    def __init__(self, model: nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names)
        self.task_names = tuple(model.config.task_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.model(**dict(zip(self.input_names, inputs))).logits
        return tuple(logits[name] for name in self.task_names)


def example_inputs(
    model: Any, processor: Any = None, batch_size: int = 2, sequence_length: int = 7
) -> dict[str, torch.Tensor]:
    """Model inputs of the right shape and dtype to trace the graph with (and to compare runtimes on)."""
    names = model.backbone.input_names
    generator = torch.Generator().manual_seed(0)
    if "pixel_values" in names:
        size = getattr(processor, "input_size", None)
        if size is None:
            crop = getattr(processor, "crop_size", None) or getattr(processor, "size", None) or {}
            height = crop.get("height") or crop.get("shortest_edge") or 224
            width = crop.get("width") or crop.get("shortest_edge") or 224
            size = (getattr(model.backbone.model.config, "num_channels", 3), height, width)
        return {"pixel_values": torch.randn(batch_size, *size, generator=generator)}
    if "input_ids" not in names:
        raise ValueError(f"ONNX export supports image and text backbones; this one takes {names}")
    vocab = getattr(model.backbone.model.config, "vocab_size", 100)
    inputs = {"input_ids": torch.randint(1, vocab, (batch_size, sequence_length), generator=generator)}
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["attention_mask"][-1, -2:] = 0  # a padded row, so masking is part of the graph
    if "token_type_ids" in names:
        inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
    return inputs


def export_onnx(
    model: Any,
    output: str | os.PathLike,
    *,
    processor: Any = None,
    opset: int = DEFAULT_OPSET,
    exporter: str = "dynamo",
    check: bool = True,
) -> dict[str, Any]:
    """Write ``model`` as an ONNX graph at ``output``; with ``check``, compare onnxruntime with PyTorch.

    ``exporter="dynamo"`` (torch.export, needs ``onnxscript``; torch's default since 2.9) keeps batch and sequence
    axes symbolic through the backbone; ``"torchscript"``, the legacy tracer, is faster to run but bakes Python-level
    shape checks of the trace into the graph (it warns where).

    Returns ``{"path", "inputs", "outputs", "opset", "max_abs_diff"}`` (``max_abs_diff``: the largest absolute
    difference between onnxruntime's and PyTorch's logits over every task on fresh example inputs of another batch
    size and text length than the traced ones).
    """
    model = model.eval().float()
    if processor is None and "pixel_values" in model.backbone.input_names:  # its input size sizes the example
        processor = model.get_processor()
    inputs = example_inputs(model, processor)
    input_names = list(inputs)
    wrapper = _TaskLogits(model, input_names).eval()
    task_names = list(wrapper.task_names)
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    axes = {name: {0: "batch", 1: "sequence"} if name in TEXT_INPUTS else {0: "batch"} for name in input_names}
    if exporter == "dynamo":
        from torch.export import Dim

        shapes = {"dynamic_shapes": (tuple({axis: Dim.AUTO for axis in axes[name]} for name in input_names),)}
    else:
        shapes = {"dynamic_axes": {**axes, **{name: {0: "batch"} for name in task_names}}}
    output = os.fspath(output)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    quiet = logging.getLogger("onnxscript")  # its optimizer logs every folded constant at INFO
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper, tuple(inputs.values()), output, input_names=input_names, output_names=task_names,
                opset_version=opset, dynamo=exporter == "dynamo", external_data=False, verbose=False, **shapes,
            )
    finally:
        quiet.setLevel(level)
    report: dict[str, Any] = {"path": output, "inputs": input_names, "outputs": task_names, "opset": opset,
                              "exporter": exporter}
    if check:
        report["max_abs_diff"] = compare_with_torch(model, output, processor)
        logger.info("ONNX export %s: onnxruntime vs PyTorch max abs diff %.3g", output, report["max_abs_diff"])
    return report


def compare_with_torch(model: Any, path: str | os.PathLike, processor: Any = None, batch_size: int = 3) -> float:
    """Largest absolute logit difference between onnxruntime and PyTorch over every task (fresh inputs)."""
    inputs = example_inputs(model, processor, batch_size=batch_size, sequence_length=11)
    with torch.no_grad():
        expected = model.eval()(**inputs).logits
    got = OnnxMultiTaskModel(path, model.config, processor).logits(inputs)
    return max(float((got[name] - expected[name].float()).abs().max()) for name in model.config.task_names)


class OnnxMultiTaskModel:
    """An exported graph with its model's config and processor: ``predict`` like [`MultiTaskModel.predict`].

    Args:
        path: the ``.onnx`` file.
        config: the [`MultiTaskConfig`] it was exported from (task specs, thresholds).
        processor: that model's preprocessing.
    """

    def __init__(self, path: str | os.PathLike, config: Any, processor: Any, providers: Sequence[str] | None = None):
        import onnxruntime

        self.path = os.fspath(path)
        self.config = config
        self.processor = processor
        self.session = onnxruntime.InferenceSession(self.path, providers=list(providers or ["CPUExecutionProvider"]))
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        missing = [name for name in config.task_names if name not in outputs]
        if missing:
            raise ValueError(f"{self.path}: the graph has no output for tasks {missing} (outputs: {outputs})")

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, file: str | os.PathLike | None = None, **kwargs: Any):
        """A saved model folder (config and processor) and its exported graph (default ``<folder>/model.onnx``)."""
        from .configuration_mtl import MultiTaskConfig
        from .preprocessing import build_processor

        path = os.fspath(file) if file is not None else os.path.join(os.fspath(folder), ONNX_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no ONNX graph at {path}; write one with `hf-mtl export onnx {folder}`")
        return cls(path, MultiTaskConfig.from_pretrained(folder), build_processor(os.fspath(folder)), **kwargs)

    @property
    def task_specs(self) -> list:
        return self.config.task_specs

    def get_processor(self) -> Any:
        return self.processor

    def logits(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batched model inputs → ``{task: logits}`` from onnxruntime."""
        absent = [name for name in self.input_names if name not in inputs]
        if absent:
            raise ValueError(f"{self.path}: the graph needs inputs {absent}; got {sorted(inputs)}")
        feed = {}
        for name in self.input_names:
            value = inputs[name].detach().cpu()
            feed[name] = (value.float() if value.is_floating_point() else value.long()).numpy()
        names = [o.name for o in self.session.get_outputs()]
        return {name: torch.from_numpy(value) for name, value in zip(names, self.session.run(names, feed))}

    def predict(self, inputs: Any, *, processor: Any = None, top_k: int | None = 1, batch_size: int = 32,
                threshold: float | None = None):
        """Predict every task for raw inputs; the same output as [`MultiTaskModel.predict`]."""
        from .pipeline import predict_with

        return predict_with(self.logits, self.task_specs, processor or self.processor, inputs, top_k=top_k,
                            batch_size=batch_size, threshold=threshold)
