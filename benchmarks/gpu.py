"""Question 6 (GPU only): training images/s and achieved FLOP utilisation with bf16 / fp16 autocast.

Two workloads through `MultiTaskTrainer` (so autocast is the Trainer's own `bf16=True` / `fp16=True`): the default
demo's training (EfficientNet-Lite0, 112 px, one 10-label multilabel task) and a ResNet-50-class backbone (timm
``resnet50``, 224 px). FLOPs per step are counted once with ``torch.utils.flop_counter`` (forward + backward);
utilisation = achieved FLOP/s / the GPU's dense peak for that precision (a table of known GPUs, or ``--peak-tflops``).
Precisions are interleaved per repetition. On a machine without a CUDA GPU the script writes a report saying it was
skipped and exits 0 (CI never runs it).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import base_parser, interleaved, setup_logging, write_report  # noqa: E402

NAME = "gpu"
QUESTION = "GPU training throughput (images/s) and FLOP utilisation with bf16/fp16 autocast"

PEAK_TFLOPS = {
    # dense tensor-core peaks (no sparsity): (fp32 non-tensor, tf32, bf16/fp16)
    "H100 80GB HBM3": (67.0, 494.7, 989.4),
    "H100": (67.0, 494.7, 989.4),
    "H200": (67.0, 494.7, 989.4),
    "A100": (19.5, 156.0, 312.0),
    "L4": (30.3, 60.0, 121.0),
    "A10G": (31.2, 62.5, 125.0),
}


def peak_for(device_name: str, precision: str, override: float | None) -> float | None:
    if override is not None:
        return override
    for key, peaks in PEAK_TFLOPS.items():
        if key in device_name:
            return peaks[0] if precision == "fp32" else peaks[2]
    return None


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0", help="The demo workload's timm backbone.")
    parser.add_argument("--image-size", type=int, default=112, help="The demo workload's input size.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per repetition.")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--peak-tflops", type=float, default=None, help="Override the GPU's dense peak TFLOP/s.")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cpu: run the same code path on the CPU (fp32 and bf16) to check the script; its numbers "
                        "mean nothing for GPUs.")
    args = parser.parse_args(argv)
    args.steps = args.steps or (10 if args.quick else 40)
    args.repeats = args.repeats or (2 if args.quick else 5)
    setup_logging()
    if args.device == "cuda" and not torch.cuda.is_available():
        return write_report(NAME, QUESTION, args, {}, [], skipped="no CUDA GPU on this machine; nothing was measured",
                            argv=argv)

    from benchmarks.overhead import StepTimes
    from benchmarks.workloads import build_model, multilabel_tasks, random_images, random_multilabel, user_rows
    from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments

    on_gpu = args.device == "cuda"
    device_name = torch.cuda.get_device_name(0) if on_gpu else "cpu (script check only)"
    if on_gpu:
        precisions = ["fp32", "bf16", "fp16"] if torch.cuda.is_bf16_supported() else ["fp32", "fp16"]
    else:
        precisions = ["fp32", "bf16"]
    workloads = {"demo": (args.backbone, args.image_size), "resnet50": ("resnet50", 224)}
    if args.quick:
        workloads = {"demo": workloads["demo"]}
    warmup = 3
    results: dict = {"device": device_name, "workloads": {}}
    for label, (backbone, size) in workloads.items():
        tasks = multilabel_tasks(1)
        n = args.batch_size * (warmup + args.steps)
        rows = user_rows(random_images(n, size), {"task0": random_multilabel(n, 10)})
        model = build_model(backbone, tasks).to(args.device)
        flops = _flops_per_step(model, args.batch_size, size, args.device)

        def run(precision: str, model=model, rows=rows):
            def once() -> float:
                timer = StepTimes()
                with tempfile.TemporaryDirectory() as tmp:
                    training_args = MultiTaskTrainingArguments(
                        output_dir=tmp, per_device_train_batch_size=args.batch_size, max_steps=warmup + args.steps,
                        bf16=precision == "bf16", fp16=precision == "fp16", learning_rate=1e-3, save_strategy="no",
                        report_to="none", disable_tqdm=True, logging_steps=50,
                        dataloader_num_workers=2 if on_gpu else 0, use_cpu=not on_gpu,
                    )
                    MultiTaskTrainer(model=model, args=training_args, train_dataset=rows, callbacks=[timer]).train()
                return args.batch_size / timer.clock.steady(warmup)[0]  # wall-clock: the GPU works asynchronously

            return once

        timing = interleaved({p: run(p) for p in precisions}, args.repeats, baseline="fp32", higher_is_better=True)
        entry = {"backbone": backbone, "image_size": size, "flops_per_step": flops, "images_per_second": timing,
                 "flop_utilisation": {}}
        for p in precisions:
            ips = timing["variants"][p]["summary"]["median"]
            achieved = flops * ips / args.batch_size / 1e12
            peak = peak_for(device_name, p, args.peak_tflops)
            entry["flop_utilisation"][p] = {"achieved_tflops": achieved, "peak_tflops": peak,
                                            "utilisation": achieved / peak if peak else None}
        results["workloads"][label] = entry
        del model
        if on_gpu:
            torch.cuda.empty_cache()

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(results["workloads"]), figsize=(5 * len(results["workloads"]), 3.5),
                                 squeeze=False)
        for ax, (label, entry) in zip(axes[0], results["workloads"].items()):
            ips = [entry["images_per_second"]["variants"][p]["summary"]["median"] for p in precisions]
            ax.bar(precisions, ips, color=["#888888", "#5b8ff9", "#e8684a"][: len(precisions)])
            for i, p in enumerate(precisions):
                u = entry["flop_utilisation"][p]["utilisation"]
                ax.text(i, ips[i] / 2, "n/a" if u is None else f"{100 * u:.1f}% peak", ha="center", fontsize=8)
            ax.set_title(f"{label}: {entry['backbone']} {entry['image_size']}px", fontsize=9)
            ax.set_ylabel("training images / s")
        fig.suptitle(device_name, fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return write_report(NAME, QUESTION, args, results, [], plot, argv=argv)


def _flops_per_step(model: torch.nn.Module, batch_size: int, size: int, device: str) -> float:
    """Forward + backward FLOPs of one training step (fp32 graph; autocast does not change the count)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch_size, 3, size, size, device=device)
    name = model.config.task_names[0]
    labels = {name: torch.randint(0, 2, (batch_size, model.task_specs[0].output_size), device=device).float()}
    with FlopCounterMode(display=False) as counter:
        model(pixel_values=x, labels=labels).loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


if __name__ == "__main__":
    main()
