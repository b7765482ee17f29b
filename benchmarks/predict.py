"""Question 4: how fast are `model.predict` and the `multi-task-classification` pipeline against a raw forward?

All variants turn the same PIL images into per-task outputs, batched, without gradients, interleaved:

* ``raw_forward``: ``model(pixel_values=x)`` on images preprocessed beforehand (the pure forward, the ceiling);
* ``raw_preprocess_forward``: the hand-written equivalent of ``predict``: the processor, then ``model(x)``, then
  sigmoid (the same work as ``predict``);
* ``predict``: ``model.predict(images, batch_size=...)`` (preprocessing, forward, decoding to label names/scores);
* ``pipeline``: ``pipeline("multi-task-classification", model=model, batch_size=...)(images)``.

Target: ``predict`` and ``pipeline`` throughput at least 0.95x the raw batched forward.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import pipeline  # noqa: E402

from benchmarks.common import (  # noqa: E402
    add_model_args,
    base_parser,
    compare,
    interleaved,
    setup_logging,
    summarize,
    target,
    write_report,
)
from benchmarks.workloads import build_model, multilabel_tasks  # noqa: E402
from hf_mtl import build_processor  # noqa: E402
from hf_mtl.pipeline import PIPELINE_TASK  # noqa: E402

NAME = "predict"
QUESTION = "Throughput of model.predict and the multi-task-classification pipeline vs a raw batched model(x) forward"


def main(argv: list[str] | None = None) -> dict:
    parser = add_model_args(base_parser(__doc__.splitlines()[0]))
    parser.add_argument("--num-images", type=int, default=None)
    parser.add_argument("--num-tasks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time of one thread is the work).")
    args = parser.parse_args(argv)
    args.num_images = args.num_images or (64 if args.quick else 256)
    args.repeats = args.repeats or (3 if args.quick else 15)
    setup_logging()
    torch.set_num_threads(args.threads)

    model = build_model(args.backbone, multilabel_tasks(args.num_tasks), seed=args.seed).eval()
    processor = build_processor(model, image_size=args.image_size)
    model.set_processor(processor)
    rng = np.random.default_rng(args.seed)
    # Raw inputs the size of the default demo's images (2x2 Fashion-MNIST grids), resized by the processor.
    images = [Image.fromarray(rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)) for _ in range(args.num_images)]
    bs = args.batch_size
    pre = [processor(images[i : i + bs])["pixel_values"] for i in range(0, len(images), bs)]
    pipe = pipeline(PIPELINE_TASK, model=model, processor=processor, batch_size=bs, device="cpu", num_workers=0)
    n = len(images)

    cpu_samples: dict[str, list[float]] = {}

    def throughput(name, fn):
        def run() -> float:
            wall, cpu = time.perf_counter(), time.thread_time()
            fn()
            cpu_samples.setdefault(name, []).append(n / (time.thread_time() - cpu))
            return n / (time.perf_counter() - wall)

        return run

    @torch.no_grad()
    def raw_forward():
        for x in pre:
            {k: torch.sigmoid(v) for k, v in model(pixel_values=x).logits.items()}

    @torch.no_grad()
    def raw_preprocess_forward():
        for i in range(0, n, bs):
            x = processor(images[i : i + bs])["pixel_values"]
            {k: torch.sigmoid(v) for k, v in model(pixel_values=x).logits.items()}

    def run_predict():
        out = model.predict(images, batch_size=bs)
        assert len(out) == n

    def run_pipeline():
        out = pipe(images)
        assert len(out) == n

    variants = {
        "raw_forward": throughput("raw_forward", raw_forward),
        "raw_preprocess_forward": throughput("raw_preprocess_forward", raw_preprocess_forward),
        "predict": throughput("predict", run_predict),
        "pipeline": throughput("pipeline", run_pipeline),
    }
    timing = interleaved(variants, args.repeats, baseline="raw_forward", higher_is_better=True)
    cpu_timing = compare(cpu_samples, baseline="raw_forward")

    def same_work(t: dict) -> dict:
        """The same samples compared with the baseline that does the same work (preprocessing included)."""
        base = t["variants"]["raw_preprocess_forward"]["samples"]
        return {name: summarize([v / b for v, b in zip(t["variants"][name]["samples"], base)])
                for name in ("predict", "pipeline")}

    results = {
        "images_per_cpu_second": cpu_timing,
        "cpu_ratio_to_raw_preprocess_forward": same_work(cpu_timing),
        "images_per_second": timing,
        "ratio_to_raw_preprocess_forward": same_work(timing),
        "num_images": n,
    }
    targets = []
    for clock, t, same in (("cpu", cpu_timing, results["cpu_ratio_to_raw_preprocess_forward"]),
                           ("wall", timing, results["ratio_to_raw_preprocess_forward"])):
        for name in ("predict", "pipeline"):
            targets.append(target(
                f"{name}_vs_raw_forward_{clock}", t["variants"][name]["ratio_to_baseline"]["median"], 0.95, ">=",
                f"{name} throughput / raw batched model(x) on already preprocessed tensors ({clock} time)",
            ))
            targets.append(target(
                f"{name}_vs_raw_preprocess_forward_{clock}", same[name]["median"], 0.95, ">=",
                f"{name} throughput / hand-written processor + model(x), the same work ({clock} time)",
            ))

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        names = list(variants)
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        for ax, (label, t) in zip(axes, (("images / CPU-second of the working thread", cpu_timing),
                                         ("images / s wall-clock", timing))):
            summ = [t["variants"][k]["summary"] for k in names]
            med = [s["median"] for s in summ]
            err = [[m - s["min"] for m, s in zip(med, summ)], [s["max"] - m for m, s in zip(med, summ)]]
            ax.bar(names, med, yerr=err, capsize=6, color=["#888888", "#bbbbbb", "#5b8ff9", "#e8684a"])
            for i, k in enumerate(names):
                r = t["variants"][k]["ratio_to_baseline"]["median"]
                ax.text(i, med[i] / 2, f"{r:.2f}x", ha="center")
            ax.set_ylabel(f"{label} (median, min-max)", fontsize=8)
            ax.tick_params(axis="x", labelsize=8)
        fig.suptitle(f"{args.backbone} {args.image_size}px, batch {bs}, {n} images: prediction throughput, ratio to "
                     "raw_forward", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return write_report(NAME, QUESTION, args, results, targets, plot, argv=argv)


if __name__ == "__main__":
    main()
