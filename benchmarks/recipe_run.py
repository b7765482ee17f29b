"""A shipped recipe as a user runs it (`hf-mtl train <recipe>`): its heads-only stage vs its final model, per task.

Issue 14 asks that every shipped recipe end at least as good as its heads-only stage on every task's main metric. This
runs the recipe's own command in a subprocess (extra ``key=value`` overrides pass through), then keeps what the run
wrote: the stage selection table (``stage_selection.json``), the final evaluation and training results, the wall
clock, and the printed evaluation blocks the README quotes. Output: ``results/recipe_<recipe name>.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, setup_logging, write_report  # noqa: E402

QUESTION = "The shipped recipe: heads-only stage vs the final model, per task"
BLOCKS = ("== after the heads-only stage ==", "== final model:", "== evaluation")


def printed_blocks(stdout: str) -> list[str]:
    """The metric blocks the run printed: the ``==`` headers above, and the task lines (``[task] ...``) and per-label
    tables under them (the Trainer's log dicts and train metrics in between are left out)."""
    out: list[str] = []
    keep = False
    for line in stdout.splitlines():
        if line.startswith("=="):
            keep = line.startswith(BLOCKS)
            if keep:
                out += ([""] if out else []) + [line]
        elif keep and (line.startswith("[") or line.startswith("    ")):
            out.append(line)
        elif line.startswith(("*****", "{")):
            keep = keep and line.startswith("{")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("recipe", help="A recipe file, e.g. recipes/fashion_grid_ordinal.yaml.")
    parser.add_argument("overrides", nargs="*", help="key=value overrides passed to `hf-mtl train`.")
    args = parser.parse_args(argv)
    setup_logging()
    name = Path(args.recipe).stem
    with tempfile.TemporaryDirectory(prefix="hf_mtl_bench_recipe_") as tmp:
        command = [sys.executable, "-m", "hf_mtl.cli", "train", args.recipe, f"output_dir={tmp}/model",
                   f"feature_cache_dir={tmp}/cache", "disable_tqdm=true", *args.overrides]
        started, cpu = time.perf_counter(), os.times()
        done = subprocess.run(command, capture_output=True, text=True)
        wall, cpu_end = time.perf_counter() - started, os.times()
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            raise SystemExit(f"`{' '.join(command)}` failed with exit status {done.returncode}")
        model = Path(tmp) / "model"

        def read(file: str):
            path = model / file
            return json.loads(path.read_text()) if path.exists() else None

        results = {
            "recipe": args.recipe, "overrides": args.overrides,
            "wall_seconds": wall, "child_cpu_seconds": (cpu_end.children_user - cpu.children_user)
            + (cpu_end.children_system - cpu.children_system),
            "stage_selection": read("stage_selection.json"), "eval_results": read("eval_results.json"),
            "train_results": read("train_results.json"), "printed": printed_blocks(done.stdout),
        }
    return write_report(f"recipe_{name}", QUESTION, args, results, argv=argv, script="recipe_run")


if __name__ == "__main__":
    main()
