"""Issue 16: is an exported ONNX graph faithful to the PyTorch model, and how fast does onnxruntime run it?

Exports real backbones with fresh heads of all four task types (EfficientNet-Lite0 with its packaged ImageNet weights at
224 px; all-MiniLM-L6-v2 from its package, when installed) through ``hf_mtl.export.export_onnx`` (dynamo exporter),
then compares onnxruntime's logits with PyTorch's on fresh inputs of another batch size (and text length) than the
traced ones, and times both runtimes on one batch (one thread, interleaved).

Target: max abs logit difference <= 1e-4 for every exported backbone.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import add_model_args, base_parser, interleaved, setup_logging, target, write_report  # noqa: E402
from hf_mtl import MultiTaskModel, build_processor  # noqa: E402
from hf_mtl.export import OnnxMultiTaskModel, example_inputs, export_onnx  # noqa: E402

NAME = "onnx_export"
QUESTION = "Does the exported ONNX graph give the PyTorch model's logits (max abs diff), and at what speed?"
TASKS = [
    {"name": "tags", "type": "multilabel", "labels": ["a", "b", "c", "d"]},
    {"name": "kind", "type": "multiclass", "labels": ["x", "y", "z"]},
    {"name": "score", "type": "regression"},
    {"name": "flag", "type": "binary", "labels": ["no", "yes"]},
]


def _image_model(backbone: str, image_size: int, quick: bool):
    weights: str | bool = False
    if not quick:
        from hf_mtl.scripts.demo_data import efficientnet_lite0_weights

        weights = efficientnet_lite0_weights()
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(backbone, TASKS, library="timm", weights=weights)
    return model, build_processor(model, image_size=image_size)


def _text_model():
    try:
        from hf_mtl.scripts.models import PACKAGED_BACKBONES

        folder = PACKAGED_BACKBONES["sentence-transformers/all-MiniLM-L6-v2"]()
    except Exception:  # noqa: BLE001  (the package is optional: the text case is then skipped)
        return None, None
    torch.manual_seed(0)
    model = MultiTaskModel.from_backbone(folder, TASKS, library="transformers", pooling="mean")
    return model, build_processor(model, source=folder)


def measure(model, processor, repeats: int, batch_size: int, folder: Path, name: str, backbone: str) -> dict:
    model.eval()
    start = time.perf_counter()
    report = export_onnx(model, folder / f"{name}.onnx", processor=processor)
    seconds = time.perf_counter() - start
    graph = OnnxMultiTaskModel(folder / f"{name}.onnx", model.config, processor)
    inputs = example_inputs(model, processor, batch_size=batch_size, sequence_length=32)

    def timed(run):
        def once() -> float:
            start = time.perf_counter()
            with torch.no_grad():
                run()
            return time.perf_counter() - start

        return once

    speed = interleaved({"pytorch": timed(lambda: model(**inputs)), "onnxruntime": timed(lambda: graph.logits(inputs))},
                        repeats=repeats, baseline="pytorch")
    return {
        "backbone": backbone,
        "inputs": report["inputs"],
        "outputs": report["outputs"],
        "opset": report["opset"],
        "exporter": report["exporter"],
        "max_abs_diff": report["max_abs_diff"],
        "export_seconds": seconds,
        "onnx_megabytes": (folder / f"{name}.onnx").stat().st_size / 2**20,
        "batch_size": batch_size,
        "batch_seconds_vs_pytorch": speed,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = add_model_args(base_parser(__doc__.splitlines()[0]), image_size=224)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 10)
    setup_logging()
    torch.set_num_threads(1)
    results, targets = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        cases = {"image": (args.backbone, lambda: _image_model(args.backbone, args.image_size, args.quick))}
        if not args.quick:
            cases["text"] = ("sentence-transformers/all-MiniLM-L6-v2", _text_model)
        for name, (backbone, build) in cases.items():
            model, processor = build()
            if model is None:
                results[name] = {"skipped": "all-MiniLM-L6-v2 package not installed"}
                continue
            results[name] = measure(model, processor, args.repeats, args.batch_size, Path(tmp), name, backbone)
            targets.append(target(f"{name}_max_abs_diff", results[name]["max_abs_diff"], 1e-4, "<=",
                                  "onnxruntime vs PyTorch logits, every task"))
    return write_report(NAME, QUESTION, args, results, targets, argv=argv)


if __name__ == "__main__":
    main()
