"""Question 2: how much faster is heads-only training with the frozen-feature cache?

The default vision demo's heads-only stage (ImageNet EfficientNet-Lite0, Fashion-MNIST 2x2 grids with 30% of labels
missing, 112 px, 10 epochs, batch 32): ``MultiTaskTrainer(freeze_policy="heads")`` with ``feature_cache=True`` (one
pass of the frozen backbone, then the heads train on the cached features) vs without (the frozen backbone runs on
every image in every epoch). End to end: from building the Trainer (which builds the cache) to the end of training,
with a fresh cache folder each repetition, repetitions interleaved; wall-clock and the working thread's CPU time (one
torch thread by default, data loading in the main process).
Target: at least 8x faster with the cache.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    base_parser,
    compare,
    interleaved,
    setup_logging,
    summarize,
    target,
    write_report,
)
from benchmarks.demo_setup import DEMO_BACKBONE, demo_model, grid_datasets, processor_for, with_pixels  # noqa: E402
from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments  # noqa: E402

NAME = "feature_cache"
QUESTION = "Heads-only training for 10 epochs with the frozen-feature cache vs without, end to end"


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=DEMO_BACKBONE, help="timm backbone (ImageNet weights for the demo's).")
    parser.add_argument("--image-size", type=int, default=112, help="The demo's input size.")
    parser.add_argument("--num-train", type=int, default=None, help="Training grids (the demo uses 3000).")
    parser.add_argument("--epochs", type=float, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time of one thread is the work).")
    args = parser.parse_args(argv)
    args.num_train = args.num_train or (96 if args.quick else 1000)
    args.repeats = args.repeats or 2
    setup_logging()
    torch.set_num_threads(args.threads)

    train, _ = grid_datasets(args.num_train, 1, missing_rate=0.3, seed=args.seed)
    template = demo_model(backbone=args.backbone, seed=args.seed)
    processor = processor_for(template, args.image_size)
    state = {k: v.clone() for k, v in template.state_dict().items()}
    pixels = with_pixels(train, processor)
    losses: dict[str, list[float]] = {"without_cache": [], "with_cache": []}
    cpu_seconds: dict[str, list[float]] = {"without_cache": [], "with_cache": []}

    def run(cache: bool):
        name = "with_cache" if cache else "without_cache"

        def once() -> float:
            model = demo_model(backbone=args.backbone, pretrained=False, seed=args.seed)
            model.load_state_dict(state)
            with tempfile.TemporaryDirectory(prefix="hf_mtl_bench_cache_") as tmp:
                training_args = MultiTaskTrainingArguments(
                    output_dir=tmp, freeze_policy="heads", feature_cache=cache, feature_cache_dir=f"{tmp}/features",
                    num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
                    per_device_eval_batch_size=64, learning_rate=3e-3, logging_steps=50, save_strategy="no",
                    report_to="none", disable_tqdm=True, dataloader_pin_memory=False,
                    use_cpu=not torch.cuda.is_available(), seed=args.seed,
                )
                start, cpu = time.perf_counter(), time.thread_time()
                trainer = MultiTaskTrainer(model=model, args=training_args, train_dataset=pixels)
                output = trainer.train()
                seconds = time.perf_counter() - start
                cpu_seconds[name].append(time.thread_time() - cpu)
            losses[name].append(output.training_loss)
            return seconds

        return once

    timing = interleaved({"without_cache": run(False), "with_cache": run(True)}, args.repeats, baseline="with_cache")
    cpu_timing = compare(cpu_seconds, baseline="with_cache")

    def speedup(t: dict) -> dict:
        return summarize([w / c for w, c in zip(t["variants"]["without_cache"]["samples"],
                                                t["variants"]["with_cache"]["samples"])])

    results = {
        "seconds": timing,
        "speedup": speedup(timing),
        "cpu_seconds": cpu_timing,
        "cpu_speedup": speedup(cpu_timing),
        "final_training_loss": losses,
        "num_train": args.num_train,
        "epochs": args.epochs,
    }
    targets = [target("feature_cache_speedup", results["speedup"]["median"], 8.0, ">=",
                      "end-to-end wall-clock time without cache / with cache (median of interleaved repetitions)"),
               target("feature_cache_speedup_cpu", results["cpu_speedup"]["median"], 8.0, ">=",
                      "the same in CPU time of the working thread")]

    def plot(path: Path) -> None:
        import matplotlib.pyplot as plt

        names = ["without_cache", "with_cache"]
        summ = [timing["variants"][k]["summary"] for k in names]
        med = [s["median"] for s in summ]
        err = [[m - s["min"] for m, s in zip(med, summ)], [s["max"] - m for m, s in zip(med, summ)]]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.bar(names, med, yerr=err, capsize=6, color=["#e8684a", "#5b8ff9"])
        ax.set_ylabel("seconds, end to end (median, min-max)")
        s = results["speedup"]
        ax.set_title(f"heads-only, {args.epochs:g} epochs, {args.num_train} grids, {args.image_size}px:\n"
                     f"{s['median']:.1f}x faster with the cache (range {s['min']:.1f}-{s['max']:.1f}x)", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return write_report(NAME, QUESTION, args, results, targets, plot, argv=argv)


if __name__ == "__main__":
    main()
