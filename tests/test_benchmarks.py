"""Smoke test of `benchmarks/`: every script runs with `--quick` on a tiny model and writes a JSON of the agreed shape.

Only the shape is checked, never a timing or a score: those depend on the machine (see benchmarks/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.common import SCHEMA_KEYS
from tests.multiprocess import TIMEOUT
from tests.tiny_models import IMAGE_SIZE, TIMM_BACKBONE

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--quick", "--backbone", TIMM_BACKBONE, "--image-size", str(IMAGE_SIZE)]

try:
    from hf_mtl.scripts.demo_data import fashion_mnist_dir

    fashion_mnist_dir()
    HAVE_FASHION_MNIST = True
except (ImportError, FileNotFoundError):
    HAVE_FASHION_MNIST = False
needs_data = pytest.mark.skipif(not HAVE_FASHION_MNIST, reason="Fashion-MNIST (Debian dataset-fashion-mnist) missing")


def check_report(report: dict, path: Path, name: str, png: bool = True, script: str | None = None) -> dict:
    on_disk = json.loads((path / f"{name}.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert tuple(on_disk) == SCHEMA_KEYS
    assert on_disk["benchmark"] == name
    assert on_disk["command"].startswith(f"python benchmarks/{script or name}.py")
    assert on_disk["machine"]["cpu_count"] >= 1 and on_disk["machine"]["torch"]
    assert on_disk["settings"]["quick"] is True
    for t in on_disk["targets"]:
        assert set(t) >= {"name", "value", "comparison", "threshold", "met", "missed_by_relative"}
        assert t["met"] == (t["value"] <= t["threshold"] if t["comparison"] == "<=" else t["value"] >= t["threshold"])
    if png:
        assert (path / f"{name}.png").stat().st_size > 1000
    return on_disk["results"]


def check_timing(timing: dict, variants: list[str], repeats: int) -> None:
    assert sorted(timing["variants"]) == sorted(variants)
    assert timing["baseline"] in variants and timing["repeats"] == repeats
    for entry in timing["variants"].values():
        assert len(entry["samples"]) == repeats and all(s > 0 for s in entry["samples"])
        for stats in (entry["summary"], entry["ratio_to_baseline"]):
            assert stats["min"] <= stats["q1"] <= stats["median"] <= stats["q3"] <= stats["max"]
    assert timing["variants"][timing["baseline"]]["ratio_to_baseline"]["median"] == pytest.approx(1.0)


def test_overhead(tmp_path):
    from benchmarks import overhead

    report = overhead.main([*TINY, "--steps", "2", "--warmup", "1", "--repeats", "2", "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "overhead")
    for clock in ("step_time_s", "cpu_step_time_s"):
        check_timing(results[clock], ["raw_loop", "plain_trainer", "multitask_trainer", "multitask_trainer_guard_off"], 2)
    assert [t["name"] for t in report["targets"]] == ["multitask_trainer_vs_raw_loop_cpu",
                                                      "multitask_trainer_vs_raw_loop_wall"]


def test_multitask_cost(tmp_path):
    from benchmarks import multitask_cost

    report = multitask_cost.main([*TINY, "--steps", "1", "--repeats", "2", "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "multitask_cost")
    variants = ["multi_task"] + [f"single_task{i}" for i in range(4)]
    for key in ("train_step_time_s", "inference_time_s", "train_step_cpu_s", "inference_cpu_s"):
        check_timing(results[key], variants, 2)
    params = results["parameters"]
    assert params["4_single_models"] == sum(params[f"single_task{i}"] for i in range(4))
    assert params["single_task0"] < params["multi_task"] < params["4_single_models"]


def test_predict(tmp_path):
    from benchmarks import predict

    report = predict.main([*TINY, "--num-images", "12", "--batch-size", "8", "--repeats", "2",
                           "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "predict")
    for key in ("images_per_second", "images_per_cpu_second"):
        check_timing(results[key], ["raw_forward", "raw_preprocess_forward", "predict", "pipeline"], 2)
    for key in ("ratio_to_raw_preprocess_forward", "cpu_ratio_to_raw_preprocess_forward"):
        assert set(results[key]) == {"predict", "pipeline"}


def test_onnx_export(tmp_path):
    pytest.importorskip("onnxruntime")
    from benchmarks import onnx_export

    report = onnx_export.main([*TINY, "--batch-size", "4", "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "onnx_export", png=False)
    assert results["image"]["outputs"] == ["tags", "kind", "score", "flag"]
    assert set(results["image"]["batch_seconds_vs_pytorch"]["variants"]) == {"pytorch", "onnxruntime"}
    assert [t["name"] for t in report["targets"]] == ["image_max_abs_diff"]


@needs_data
def test_feature_cache(tmp_path):
    from benchmarks import feature_cache

    report = feature_cache.main([*TINY, "--num-train", "16", "--epochs", "2", "--batch-size", "8", "--repeats", "1",
                                 "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "feature_cache")
    for key in ("seconds", "cpu_seconds"):
        check_timing(results[key], ["without_cache", "with_cache"], 1)
    assert results["speedup"]["n"] == 1 and results["cpu_speedup"]["n"] == 1
    assert all(len(v) == 1 for v in results["final_training_loss"].values())


def test_gpu_skips_cleanly_without_gpu(tmp_path):
    import torch

    from benchmarks import gpu

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the GPU benchmark would run for real")
    report = gpu.main([*TINY, "--output-dir", str(tmp_path)])
    assert "no CUDA GPU" in report["skipped"]
    check_report(report, tmp_path, "gpu", png=False)
    assert report["results"] == {} and report["targets"] == []


def test_gpu_code_path_on_cpu(tmp_path):
    """The GPU benchmark's measuring code, run on the CPU (`--device cpu`) so CI checks what only GPUs run for real."""
    from benchmarks import gpu

    report = gpu.main([*TINY, "--device", "cpu", "--batch-size", "4", "--steps", "1", "--repeats", "1",
                       "--output-dir", str(tmp_path)])
    assert report["skipped"] is None
    results = check_report(report, tmp_path, "gpu")
    demo = results["workloads"]["demo"]
    assert demo["flops_per_step"] > 0
    check_timing(demo["images_per_second"], ["fp32", "bf16"], 1)
    assert set(demo["flop_utilisation"]) == {"fp32", "bf16"}


def test_script_runs_from_the_command_line(tmp_path):
    """`python benchmarks/<name>.py` works from a checkout, without installing `benchmarks`."""
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--quick", "--output-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "gpu.json").read_text())["benchmark"] == "gpu"


@needs_data
def test_claim_missing_labels(tmp_path):
    from benchmarks import claim_missing_labels as claim

    report = claim.main([*TINY, "--num-train", "24", "--num-eval", "24", "--seeds", "1", "--rates", "0", "0.6",
                         "--epochs", "1", "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "claim_missing_labels")
    assert set(results["macro_roc_auc"]) == set(claim.STRATEGIES)
    for strategy in claim.STRATEGIES:
        for rate in ("0.0", "0.6"):
            stats = results["macro_roc_auc"][strategy][rate]
            assert stats["n"] == 1 and 0.0 <= stats["mean"] <= 1.0
    kept = results["training_rows_kept"]
    assert kept["masked"]["0.6"] == [24] and kept["drop_partial"]["0.0"] == [24] and kept["drop_partial"]["0.6"][0] < 24


@needs_data
def test_claim_data_size(tmp_path):
    from benchmarks import claim_data_size as claim

    report = claim.main([*TINY, "--sizes", "8", "16", "--num-eval", "24", "--seeds", "1", "--min-steps", "1",
                         "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "claim_data_size")
    assert set(results["macro_roc_auc"]) == set(claim.CURVES)
    assert set(results["by_size"]) == set(results["auto_decision_tables"]) == {"8", "16"}
    for n, row in results["by_size"].items():
        assert row["best_fixed_policy"] in ("heads", "top_n", "full")
        assert row["auto_picks"] == [table["policy"] for table in results["auto_decision_tables"][n]]
        assert all(policy in ("heads", "top_n", "full") for policy in row["auto_picks"])
        # auto ends where the recipe's best_stage rule leaves its trial winner; each fixed policy goes through it too
        for table in results["auto_decision_tables"][n]:
            winner = table["trial_policy"]
            assert table["policy"] == (table["same_rule"][winner]["kept"] if winner != "heads" else "heads")
        assert set(row["same_rule_fixed"]) == {"heads", "top_n", "full"}
        assert row["auto_minus_same_rule_best"] <= 1e-12


@needs_data
def test_claim_multitask(tmp_path):
    from benchmarks import claim_multitask as claim

    report = claim.main([*TINY, "--num-train", "24", "--num-eval", "24", "--seeds", "1", "--epochs", "1",
                         "--batch-size", "8", "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "claim_multitask")
    assert set(results["scores"]) == {"multi_task", "separate_same_budget"}
    for by_task in results["scores"].values():
        assert set(by_task) == {"present", "top_left", "num_classes"}
    assert results["optimizer_steps"] == {"multi_task": 3, "separate_same_budget": 3, "separate_3x_budget": None}
    affinity = results["affinity"]  # advise's task affinity beside the measured joint-vs-separate result
    assert affinity["tasks"] == ["present", "top_left", "num_classes"] and len(affinity["per_seed"]) == 1
    assert sorted(t for g in affinity["suggested_groups"] for t in g) == sorted(affinity["tasks"])
    assert affinity["agreeing_tasks"] == sum(v["agree"] for v in affinity["per_task"].values())


def test_recipe_run(tmp_path):
    """A recipe as a user runs it: the stage table, final metrics and the printed blocks the README quotes."""
    from benchmarks import recipe_run as bench
    from tests.recipe_helpers import tiny_recipe, write_image_dataset, write_recipe

    data = write_image_dataset(tmp_path / "data", 16)
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(data, tmp_path / "unused", heads_only_epochs=1,
                                                              max_steps=2))
    report = bench.main(["--quick", str(recipe), "learning_rate=0.02", "--output-dir", str(tmp_path / "out")])
    results = check_report(report, tmp_path / "out", "recipe_tiny", png=False, script="recipe_run")
    assert results["stage_selection"]["kept"] in ("fine-tuned", "heads-only")
    assert results["printed"][0] == "== after the heads-only stage ==" and "eval_main_score" in results["eval_results"]
    assert any(line.startswith("== evaluation") for line in results["printed"]) and results["wall_seconds"] > 0


@needs_data
def test_advise(tmp_path):
    from benchmarks import advise as bench

    report = bench.main([*TINY, "--num-train", "24", "--num-eval", "16", "--seeds", "2", "--output-dir",
                         str(tmp_path)])
    results = check_report(report, tmp_path, "advise")
    image = results["image"]
    assert len(image["candidates"]) == 2 and image["num_train"] == image["advise_samples"] == 24
    for c in image["candidates"].values():
        assert c["fine_tuned"]["n"] == 2 and 0.0 <= c["fine_tuned"]["mean"] <= 1.0 and c["advise_seconds"] > 0
        assert set(c["logme"]) == {"present"}
    assert image["kendall_tau_all_pairs"] in (-1.0, 1.0)
    assert 0 < image["advise_time_share"] and {t["name"] for t in report["targets"]} >= {"image_advise_time_share"}
    # a report of data sets run separately combines without rerunning them
    combined = bench.main([*TINY, "--from-json", str(tmp_path / "advise.json"), "--output-dir", str(tmp_path / "c")])
    assert combined["results"]["image"] == json.loads(json.dumps(image))


def test_finetune_recipe(tmp_path):
    from benchmarks import finetune_recipe as bench

    report = bench.main([*TINY, "--sizes", "16", "--num-eval", "16", "--seeds", "1", "--variants", "old", "both",
                         "--policies", "top_n", "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "finetune_recipe", png=False)
    assert set(results["macro_roc_auc"]) == {"heads", "top_n/old", "top_n/both"}
    assert results["minus_heads_only"]["heads"]["16"] == 0.0


def test_text_baseline(tmp_path):
    from benchmarks import text_baseline as bench

    try:
        report = bench.main(["--quick", "--output-dir", str(tmp_path)])
    except FileNotFoundError as err:
        pytest.skip(f"WordNet data missing: {err}")
    results = check_report(report, tmp_path, "text_baseline", png=False)
    assert set(results["tfidf_logreg"]) == {"pos", "supersense", "kind"}
    assert all(0.0 <= r["value"] <= 1.0 for r in results["tfidf_logreg"].values())


@needs_data
@pytest.mark.slow  # four CLI processes
def test_threshold_tuning(tmp_path):
    from benchmarks import threshold_tuning as bench

    report = bench.main([*TINY, "--output-dir", str(tmp_path), "--work-dir", str(tmp_path / "work")])
    results = check_report(report, tmp_path, "threshold_tuning", png=False)
    assert set(results["runs"]) == {"train", "eval_test_at_0.5", "tune_thresholds", "eval_test_tuned"}
    assert "data:  split 'test' of imagefolder" in results["runs"]["eval_test_tuned"]["stdout"]
    assert len(results["per_label"]) == 11  # 10 `present` labels and `two_bags`
    _check_threshold_tuning_rendering(json.loads((tmp_path / "threshold_tuning.json").read_text()))


def _check_threshold_tuning_rendering(report: dict) -> None:
    from benchmarks import render_readme

    lines = render_readme.threshold_tuning(report)
    rows = [line for line in lines if line.startswith("| present/") or line.startswith("| two_bags/")]
    assert len(rows) == len(report["results"]["per_label"]) == 11
    f3 = render_readme._f3  # a score, or n/a: a quick run's labels may have no positives in the test split
    for line, row in zip(rows, report["results"]["per_label"].values()):
        assert f"| {f3(row['test_f1_at_0.5'])} | {f3(row['test_f1_tuned'])} |" in line
    macro = report["results"]["test_macro_f1_present"]
    assert f"{f3(macro['at_0.5'])} at 0.5, **{f3(macro['tuned'])}** tuned" in "\n".join(lines)
    assert f"`present` macro {f3(macro['at_0.5'])} → {f3(macro['tuned'])}" in render_readme.headline(
        "threshold_tuning", report)


def test_threshold_tuning_results_render_into_the_readme():
    """The committed run's JSON renders as a table, and benchmarks/README.md holds that rendering."""
    from benchmarks import render_readme

    results = ROOT / "benchmarks" / "results"
    _check_threshold_tuning_rendering(json.loads((results / "threshold_tuning.json").read_text()))
    section = render_readme.render(results).split("### 5i. ", 1)[1].split("\n### ", 1)[0]
    assert section in (ROOT / "benchmarks" / "README.md").read_text()
