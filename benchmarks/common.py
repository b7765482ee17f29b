"""What every benchmark shares: the CLI, interleaved timing, summary statistics and the JSON + PNG report.

Benchmarks run on shared, noisy machines, so a timing is never reported alone: every variant is measured in the same
run as its baseline, repetitions are interleaved (baseline, variant, baseline, variant, ...) so a slow spell hits both,
and the reported number is the median of the per-repetition ratios with its spread.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger("benchmarks")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
"""Where full runs write their JSON and PNG (committed, shown in the READMEs)."""

SCHEMA_KEYS = ("benchmark", "question", "command", "date", "machine", "settings", "results", "targets", "skipped")
"""Top-level keys of every benchmark's JSON (the smoke test checks them)."""


def base_parser(description: str) -> argparse.ArgumentParser:
    """Options every benchmark understands."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="A few-minute run on 2 CPU cores (smoke test, CI).")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR), help="Where to write <name>.json and <name>.png.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of data and model initialisation.")
    return parser


def add_model_args(parser: argparse.ArgumentParser, backbone: str = "tf_efficientnet_lite0", image_size: int = 64):
    """Backbone options shared by the speed benchmarks (a tiny timm model makes the smoke test fast)."""
    parser.add_argument("--backbone", default=backbone, help="timm backbone name.")
    parser.add_argument("--image-size", type=int, default=image_size, help="Square input size in pixels.")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser


def machine_info() -> dict[str, Any]:
    """Enough about the machine to compare runs: CPU, cores, load, library versions, accelerator."""
    import timm
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "timm": timm.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and range of a sample (quartiles by the inclusive method; equal to the median for n < 2)."""
    values = sorted(float(v) for v in values)
    if not values:
        raise ValueError("cannot summarize an empty sample")
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return {
        "median": statistics.median(values),
        "q1": q1,
        "q3": q3,
        "min": values[0],
        "max": values[-1],
        "n": len(values),
    }


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (error bars over seeds)."""
    values = [float(v) for v in values]
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": values,
    }


def interleaved(
    variants: Mapping[str, Callable[[], float]], repeats: int, baseline: str, higher_is_better: bool = False
) -> dict[str, Any]:
    """Run each variant once per repetition, in rotating order, and compare it with the baseline of that repetition.

    Each callable runs one repetition and returns its measurement (seconds per step, or images per second when
    ``higher_is_better``). The ratio is ``variant / baseline`` per repetition, so values above 1 mean slower (or,
    for throughputs, faster) than the baseline.
    """
    if baseline not in variants:
        raise ValueError(f"baseline {baseline!r} is not one of the variants {list(variants)}")
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(repeats):
        order = names[rep % len(names):] + names[: rep % len(names)]  # rotate so no variant always runs first
        for name in order:
            samples[name].append(float(variants[name]()))
        logger.info("repetition %d/%d: %s", rep + 1, repeats, {n: round(samples[n][-1], 5) for n in names})
    return compare(samples, baseline)


def compare(samples: Mapping[str, Sequence[float]], baseline: str) -> dict[str, Any]:
    """Per-variant summaries and per-repetition ratios to the baseline, from samples taken in the same repetitions."""
    result: dict[str, Any] = {"baseline": baseline, "repeats": len(samples[baseline]), "variants": {}}
    for name, values in samples.items():
        ratios = [v / b for v, b in zip(values, samples[baseline])]
        result["variants"][name] = {
            "samples": list(values),
            "summary": summarize(values),
            "ratio_to_baseline": summarize(ratios),
        }
    return result


def target(
    name: str, value: float, threshold: float, comparison: str, description: str = ""
) -> dict[str, Any]:
    """A target of the issue: met or not, and by how much it is missed (relative to the threshold)."""
    if comparison not in ("<=", ">="):
        raise ValueError(f"comparison must be '<=' or '>=', got {comparison!r}")
    met = value <= threshold if comparison == "<=" else value >= threshold
    missed_by = 0.0 if met else abs(value - threshold) / abs(threshold)
    return {
        "name": name,
        "description": description,
        "value": value,
        "comparison": comparison,
        "threshold": threshold,
        "met": bool(met),
        "missed_by_relative": missed_by,
    }


def command_line() -> str:
    """The command that produced this report, as a user would type it."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def write_report(
    name: str,
    question: str,
    args: argparse.Namespace,
    results: Mapping[str, Any],
    targets: Sequence[Mapping[str, Any]] = (),
    plot: Callable[[Path], None] | None = None,
    skipped: str | None = None,
    argv: Sequence[str] | None = None,
    script: str | None = None,
) -> dict[str, Any]:
    """Write ``<output_dir>/<name>.json`` (and ``<name>.png`` through ``plot``); return the report."""
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    script = script or name
    command = command_line() if argv is None else shlex.join(["python", f"benchmarks/{script}.py", *argv])
    report = {
        "benchmark": name,
        "question": question,
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "settings": {k: v for k, v in vars(args).items() if k != "output_dir"},
        "results": dict(results),
        "targets": list(targets),
        "skipped": skipped,
    }
    json_path = output_dir / f"{name}.json"
    json_path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    if plot is not None and skipped is None:
        import matplotlib

        matplotlib.use("Agg")
        plot(output_dir / f"{name}.png")
    logger.info("wrote %s", json_path)
    for t in targets:
        verdict = "met" if t["met"] else f"MISSED by {100 * t['missed_by_relative']:.1f}%"
        logger.info("target %s: %.4g %s %.4g -> %s", t["name"], t["value"], t["comparison"], t["threshold"], verdict)
    return report


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


class StepClock:
    """Wall-clock and CPU time of the calling thread at each tick.

    The CPU time of the thread that runs the work (``time.thread_time``; with one torch thread every op, the data
    loader with ``num_workers=0`` and the CPU autograd engine run in it) counts the work a step needs and not the time
    the process waits for a core, so it stays meaningful on an oversubscribed machine where wall-clock does not.
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def reset(self) -> None:
        self.wall, self.cpu = [], []
        self.tick()

    def tick(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.thread_time())

    def steady(self, warmup: int) -> tuple[float, float]:
        """Median (wall, CPU) seconds per interval after ``warmup`` intervals."""
        return tuple(_median_interval(ticks, warmup) for ticks in (self.wall, self.cpu))


def _median_interval(ticks: list[float], warmup: int) -> float:
    intervals = [b - a for a, b in zip(ticks, ticks[1:])][warmup:]
    if not intervals:
        raise ValueError("no steady-state steps were timed; raise --steps")
    return statistics.median(intervals)


class Stopwatch:
    """``with Stopwatch() as sw: ...``; ``sw.seconds`` afterwards (perf_counter)."""

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self._start


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
