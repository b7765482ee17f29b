"""Scale: streaming training memory and throughput as the data set grows, and large label spaces.

(a) Peak resident memory of a whole `hf-mtl train` recipe run (load, checks before step 1, a fixed number of training
steps) on Parquet shards of PNG images at 1x, 4x and 16x the rows, with `streaming: true` against the map-style path
(`load_dataset` + Arrow cache + every row checked). Target: streaming flat, at most 1.2x from 1x to 16x.
(b) Training throughput (samples / s of `trainer.train`, on the wall clock and on the process's CPU clock) of the
streaming path against the map-style path on the same data, measured in the same run (pairs of fresh processes in
alternating order, ``--repeats`` pairs per scale, median of the pairs' ratios). Target: at least 0.9x.
(d) Time and peak memory of label validation (`validate_labels`) and evaluation (the Trainer's `compute_metrics`)
of a multilabel task with 1k, 10k and 50k labels, each size in a fresh process. Target: linear (time per label at
50k at most 2x that at 1k).
Each configuration runs in its own process (peak RSS is a high-water mark), one torch thread; parts a/b start with
one untimed run of each mode (the first process of a pass pays cold file caches).
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, setup_logging, summarize, target, write_report  # noqa: E402

NAME = "scale"
QUESTION = ("Streaming vs map-style recipe training as the data set grows (peak memory, throughput), and label "
            "validation / evaluation cost at 1k-50k labels")
REPO = Path(__file__).resolve().parent.parent
SCALES = (1, 4, 16)
LABEL_SIZES = (1_000, 10_000, 50_000)
PART_KEYS = {"ab": ("scales", "rows", "data_mb", "runs", "rss_growth_1x_to_16x", "throughput_ratio_streaming_to_map",
                    "throughput_ratios_per_scale", "warmup_runs", "throughput_cpu_ratio_streaming_to_map",
                    "throughput_cpu_ratios_per_scale", "throughput_ratio_pairs"),
             "d": ("label_sizes", "labels", "seconds_per_label")}
PART_SETTINGS = {"ab": ("backbone", "image_size", "batch_size", "steps", "base_rows", "shards", "stored_image_size",
                        "repeats", "warmup"),
                 "d": ("label_rows", "eval_rows")}
PART_TARGETS = {"ab": "streaming_", "d": "_time_per_label_"}
TASKS = [{"name": "kind", "type": "multiclass", "labels": [f"c{i}" for i in range(10)]},
         {"name": "tags", "type": "multilabel", "labels": ["a", "b", "c", "d", "e"]}]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def write_shards(folder: Path, rows: int, shards: int, image_size: int, seed: int) -> Path:
    """``rows`` noise PNGs with labels, in ``shards`` Parquet files (images embedded as bytes)."""
    import datasets
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    features = datasets.Features({"image": datasets.Image(), "kind": datasets.Value("string"),
                                  "tags": datasets.List(datasets.Value("string"))})
    per_shard = rows // shards
    for s in range(shards):
        batch = {"image": [], "kind": [], "tags": []}
        for _ in range(per_shard):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)).save(buffer, "PNG")
            batch["image"].append({"bytes": buffer.getvalue(), "path": None})
            batch["kind"].append(f"c{int(rng.integers(10))}")
            batch["tags"].append(sorted({"abcde"[int(i)] for i in rng.integers(0, 5, 2)}))
        datasets.Dataset.from_dict(batch, features=features).to_parquet(str(folder / f"part-{s:04d}.parquet"))
    return folder


def recipe(data: Path, out: Path, streaming: bool, args) -> dict:
    base = {"backbone": args.backbone, "weights": "none", "image_size": args.image_size, "tasks": TASKS,
            "dataset": "parquet", "train_file": str(data / "*.parquet"), "input_column": "image", "augment": False,
            "max_steps": args.steps, "per_device_train_batch_size": args.batch_size, "per_device_eval_batch_size": 32,
            "learning_rate": 1e-3, "logging_steps": 1000, "save_strategy": "no", "report_to": "none",
            "seed": args.seed, "output_dir": str(out), "dataloader_pin_memory": False, "disable_tqdm": True,
            "max_eval_samples": 32, "show_per_label": False}
    if streaming:
        base.update(streaming=True, shuffle_buffer_size=256, validate_stream_rows=256)
    else:
        base.update(validation_split=0.01)
    return base


def worker_train(spec: dict) -> dict:
    """One recipe run in this (fresh) process: its peak RSS and the training throughput, on the wall clock and on the
    process's CPU clock (every thread: the stream's reader threads included), which a loaded machine does not slow."""
    import torch
    from transformers import TrainerCallback

    from hf_mtl.scripts.arguments import parse_recipe
    from hf_mtl.scripts.train import run

    class TrainCpuClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.process_time()

        def on_train_end(self, args, state, control, **kwargs):
            self.seconds = time.process_time() - self.start

    torch.set_num_threads(1)
    start, clock = time.perf_counter(), TrainCpuClock()
    run(*parse_recipe(spec["recipe"]), callbacks=[clock])
    train = json.loads((Path(spec["recipe"]["output_dir"]) / "train_results.json").read_text())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    samples = spec["recipe"]["max_steps"] * spec["recipe"]["per_device_train_batch_size"]
    return {"peak_rss_mb": peak_rss_mb(), "wall_s": time.perf_counter() - start,
            "cpu_s": usage.ru_utime + usage.ru_stime, "train_samples_per_second": train["train_samples_per_second"],
            "train_runtime_s": train["train_runtime"], "train_cpu_s": clock.seconds,
            "train_samples_per_cpu_second": samples / clock.seconds}


def worker_labels(spec: dict) -> dict:
    """Label validation and evaluation of one multilabel task of ``spec["labels"]`` labels."""
    import datasets
    import numpy as np
    import torch
    from transformers import EvalPrediction

    from hf_mtl import TaskSpec
    from hf_mtl.data import validate_labels
    from hf_mtl.metrics import build_compute_metrics

    torch.set_num_threads(1)
    n_labels, rows, eval_rows = spec["labels"], spec["rows"], spec["eval_rows"]
    names = [f"tag_{i:06d}" for i in range(n_labels)]
    task = TaskSpec(name="tags", type="multilabel", labels=names)
    rng = np.random.default_rng(0)
    data = datasets.Dataset.from_dict({"tags": [[names[int(i)] for i in rng.integers(0, n_labels, 5)]
                                                for _ in range(rows)]})
    base_rss = peak_rss_mb()
    start = time.perf_counter()
    validate_labels(data, [task])
    validate_s = time.perf_counter() - start
    validate_rss = peak_rss_mb()
    logits = rng.standard_normal((eval_rows, n_labels)).astype(np.float32)
    labels = (rng.random((eval_rows, n_labels)) < 0.05).astype(np.float32)
    labels[rng.random((eval_rows, n_labels)) < 0.2] = -100
    compute = build_compute_metrics([task], per_label=True)
    start = time.perf_counter()
    metrics = compute(EvalPrediction(predictions={"tags": logits}, label_ids={"tags": labels}))
    evaluate_s = time.perf_counter() - start
    return {"labels": n_labels, "validate_rows": rows, "eval_rows": eval_rows, "validate_s": validate_s,
            "evaluate_s": evaluate_s, "rss_before_mb": base_rss, "peak_rss_after_validate_mb": validate_rss,
            "peak_rss_mb": peak_rss_mb(), "metric_keys": len(metrics)}


def in_fresh_process(kind: str, spec: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(spec)], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0", help="timm backbone (random weights).")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None, help="Training steps per run (the same at every scale).")
    parser.add_argument("--base-rows", type=int, default=None, help="Rows at 1x.")
    parser.add_argument("--shards", type=int, default=8, help="Parquet shards at 1x (x scale at larger sizes).")
    parser.add_argument("--stored-image-size", type=int, default=96, help="Side of the stored PNGs.")
    parser.add_argument("--label-rows", type=int, default=None, help="Rows whose labels are validated.")
    parser.add_argument("--eval-rows", type=int, default=None, help="Evaluation rows scored.")
    parser.add_argument("--parts", default="a,b,d", help="Which parts to run (a,b share runs; d); the report keeps "
                        "the other parts' results from the report already in --output-dir.")
    parser.add_argument("--repeats", type=int, default=None, help="Parts a/b: pairs of runs per scale (3; quick 1).")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="Parts a/b: skip the untimed first run of each mode (cold file caches).")
    args = parser.parse_args(argv)
    args.steps = args.steps or (6 if args.quick else 40)
    args.base_rows = args.base_rows or (64 if args.quick else 1500)
    args.label_rows = args.label_rows or (50 if args.quick else 500)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.eval_rows = args.eval_rows or (50 if args.quick else 200)
    setup_logging()
    parts = set(args.parts.split(","))
    results: dict = {}
    targets = []
    if parts & {"a", "b"}:
        runs: dict = {"streaming": {}, "map_style": {}}
        data_mb = {}
        with tempfile.TemporaryDirectory(prefix="hf_mtl_scale_") as tmp:
            warmup = {}  # one untimed run of each mode first: the first process of a pass pays cold file caches
            pairs: dict = {"wall": {}, "cpu": {}}  # streaming / map-style of each repetition, per scale
            for index, scale in enumerate(SCALES):
                data = write_shards(Path(tmp) / f"x{scale}", args.base_rows * scale, args.shards * scale,
                                    args.stored_image_size, args.seed)
                data_mb[scale] = sum(f.stat().st_size for f in data.iterdir()) / 2**20
                if scale == SCALES[0] and args.warmup:
                    for mode in runs:
                        os.environ["HF_DATASETS_CACHE"] = str(Path(tmp) / f"home-warmup-{mode}")
                        spec = {"recipe": recipe(data, Path(tmp) / f"out-warmup-{mode}", mode == "streaming", args)}
                        warmup[mode] = in_fresh_process("train", spec)
                reps: dict = {mode: [] for mode in runs}
                for rep in range(args.repeats):  # pairs in alternating order: a slow spell hits both modes
                    order = ("streaming", "map_style") if (index + rep) % 2 == 0 else ("map_style", "streaming")
                    for mode in order:  # a fresh cache folder per run: the map-style path builds its Arrow cache
                        os.environ["HF_DATASETS_CACHE"] = str(Path(tmp) / f"home-{mode}-{scale}-{rep}")
                        spec = {"recipe": recipe(data, Path(tmp) / f"out-{mode}-{scale}-{rep}", mode == "streaming",
                                                 args)}
                        reps[mode].append(in_fresh_process("train", spec))
                        print(json.dumps({"mode": mode, "scale": scale, "repeat": rep, **reps[mode][-1]}), flush=True)
                for clock, key in (("wall", "train_samples_per_second"), ("cpu", "train_samples_per_cpu_second")):
                    pairs[clock][scale] = [st[key] / mp[key] for st, mp in zip(reps["streaming"], reps["map_style"])]
                for mode in runs:  # peak RSS: the highest of the repetitions; throughputs: their median
                    runs[mode][scale] = {"peak_rss_mb": max(r["peak_rss_mb"] for r in reps[mode]),
                                         **{key: summarize([r[key] for r in reps[mode]])["median"]
                                            for key in ("train_samples_per_second", "train_samples_per_cpu_second",
                                                        "train_runtime_s", "train_cpu_s", "wall_s", "cpu_s")},
                                         "repeats": reps[mode]}
        ratios = [r for s in SCALES for r in pairs["wall"][s]]
        cpu_ratios = [r for s in SCALES for r in pairs["cpu"][s]]
        growth = {mode: runs[mode][SCALES[-1]]["peak_rss_mb"] / runs[mode][SCALES[0]]["peak_rss_mb"] for mode in runs}
        results.update(scales=list(SCALES), rows={s: args.base_rows * s for s in SCALES}, data_mb=data_mb, runs=runs,
                       warmup_runs=warmup, rss_growth_1x_to_16x=growth,
                       throughput_ratio_streaming_to_map=summarize(ratios),
                       throughput_cpu_ratio_streaming_to_map=summarize(cpu_ratios),
                       throughput_ratios_per_scale={s: summarize(pairs["wall"][s])["median"] for s in SCALES},
                       throughput_cpu_ratios_per_scale={s: summarize(pairs["cpu"][s])["median"] for s in SCALES},
                       throughput_ratio_pairs=pairs)
        targets.append(target("streaming_peak_rss_growth_1x_to_16x", growth["streaming"], 1.2, "<=",
                              "peak RSS of a streaming recipe run at 16x the rows / at 1x (highest of the repetitions)"))
        targets.append(target("streaming_throughput_vs_map_style", summarize(ratios)["median"], 0.9, ">=",
                              "train samples/s streaming / map-style, median over the pairs of runs at every scale "
                              "(same run)"))
        targets.append(target("streaming_throughput_vs_map_style_cpu", summarize(cpu_ratios)["median"], 0.9, ">=",
                              "train samples per CPU second (process CPU time of `trainer.train`) streaming / "
                              "map-style, median over the pairs"))
    if "d" in parts:
        labels = {}
        for n in LABEL_SIZES:
            labels[n] = in_fresh_process("labels", {"labels": n, "rows": args.label_rows, "eval_rows": args.eval_rows})
            print(json.dumps(labels[n]), flush=True)
        per_label = {key: {n: labels[n][key] / n for n in LABEL_SIZES} for key in ("validate_s", "evaluate_s")}
        results.update(label_sizes=list(LABEL_SIZES), labels=labels, seconds_per_label=per_label)
        for key in ("validate_s", "evaluate_s"):
            growth = per_label[key][LABEL_SIZES[-1]] / per_label[key][LABEL_SIZES[0]]
            targets.append(target(f"{key[:-2]}_time_per_label_50k_over_1k", growth, 2.0, "<=",
                                  f"{key[:-2]} seconds per label at 50k labels / at 1k (1 = linear, 50 = quadratic)"))
    keep_previous_parts(args, parts, results, targets)
    return write_report(NAME, QUESTION, args, results, targets, plot=lambda path: plot(results, path), argv=argv)


def keep_previous_parts(args, parts: set[str], results: dict, targets: list) -> None:
    """Parts not run now keep their results, targets and settings from the report already in ``--output-dir``
    (``--parts a,b`` does not erase part d); ``results["previous_parts"]`` says which run they come from."""
    path = Path(args.output_dir) / f"{NAME}.json"
    if not path.is_file():
        return
    previous = json.loads(path.read_text())
    if previous["settings"].get("quick") != args.quick:
        return  # a quick run does not mix with a full one
    kept = [part for part in PART_KEYS if not set(part) & parts and PART_KEYS[part][0] in previous["results"]]
    for part in kept:
        results.update({key: previous["results"][key] for key in PART_KEYS[part] if key in previous["results"]})
        targets.extend(t for t in previous["targets"] if PART_TARGETS[part] in t["name"])
        for key in PART_SETTINGS[part]:
            if key in previous["settings"]:
                setattr(args, key, previous["settings"][key])
    if kept:
        earlier = previous["results"].get("previous_parts", {})
        results["previous_parts"] = {part: earlier.get(part) or {"command": previous["command"], "date": previous["date"]}
                                     for part in kept}


def plot(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    def at(mapping: dict, key: int):  # parts kept from an earlier report have the JSON's string keys
        return mapping[key] if key in mapping else mapping[str(key)]

    panels = [p for p in ("runs", "labels") if p in results]
    fig, axes = plt.subplots(1, len(panels) + ("runs" in results), figsize=(5 * (len(panels) + 1), 4))
    axes = list(axes) if hasattr(axes, "__len__") else [axes]
    i = 0
    if "runs" in results:
        rows = [at(results["rows"], s) for s in results["scales"]]
        for mode, runs in results["runs"].items():
            axes[0].plot(rows, [at(runs, s)["peak_rss_mb"] for s in results["scales"]], marker="o", label=mode)
            axes[1].plot(rows, [at(runs, s)["train_samples_per_second"] for s in results["scales"]], marker="o",
                         label=mode)
        axes[0].set(xscale="log", xlabel="training rows", ylabel="peak RSS (MiB)", title="(a) peak memory")
        axes[1].set(xscale="log", xlabel="training rows", ylabel="train samples / s", title="(b) throughput")
        for ax in axes[:2]:
            ax.legend()
        i = 2
    if "labels" in results:
        sizes = results["label_sizes"]
        for key in ("validate_s", "evaluate_s"):
            axes[i].plot(sizes, [at(results["labels"], n)[key] for n in sizes], marker="o", label=key[:-2])
        axes[i].set(xscale="log", yscale="log", xlabel="labels", ylabel="seconds",
                    title="(d) label validation / evaluation")
        axes[i].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        kind, spec = sys.argv[2], json.loads(sys.argv[3])
        result = worker_train(spec) if kind == "train" else worker_labels(spec)
        print(json.dumps(result))
    else:
        main()
