"""`advise` / `hf-mtl advise` on tiny random backbones and small on-disk data: the report folder and its verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_mtl import TaskSpec
from hf_mtl.advise import advise, backbone_factory, data_report, parse_candidate, probe
from hf_mtl.advise.data_report import gini
from hf_mtl.scripts.advise import advise_recipe
from tests.recipe_helpers import run_cli, tiny_recipe, write_image_dataset, write_recipe
from tests.tiny_models import MIXED_TASKS


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_image_dataset(tmp_path_factory.mktemp("advise_data"), 64, seed=0, missing=0.3)


def test_advise_writes_the_report_folder(data_file, tmp_path):
    recipe = tiny_recipe(data_file, tmp_path / "out", feature_cache_dir=str(tmp_path / "cache"))
    report = advise_recipe(recipe, ["test_efficientnet_gn@none", "test_efficientnet@none"], max_samples=48,
                    output_dir=tmp_path / "advice", affinity_steps=5, probe_steps=20)
    names = [t["name"] for t in MIXED_TASKS]
    assert report["num_samples"] == 48
    assert set(report["backbones"]) == {"test_efficientnet_gn@none", "test_efficientnet@none"}
    for entry in report["backbones"].values():
        assert list(entry["logme"]) == names and all(np.isfinite(v) for v in entry["logme"].values())
        assert entry["mean_logme"] == pytest.approx(np.mean(list(entry["logme"].values())), abs=1e-5)
    best = max(report["backbones"], key=lambda k: report["backbones"][k]["mean_logme"])
    assert f"{report['recommended_backbone']['name']}@none" == best
    assert report["freeze"]["policy"] in ("heads", "top_n", "full")
    assert len(report["affinity"]["matrix"]) == 4 and report["affinity"]["steps"] == 5
    assert sorted(sum(report["affinity"]["groups"], [])) == sorted(names)
    assert set(report["probe"]["pretrained"]["val_loss"]) == set(names)
    on_disk = json.loads((tmp_path / "advice" / "advice.json").read_text())
    assert on_disk["recommended_backbone"] == report["recommended_backbone"]
    markdown = (tmp_path / "advice" / "advice.md").read_text()
    assert "**Backbone: `" in markdown and "**Freeze policy: `" in markdown and "**Task grouping" in markdown
    for png in ("logme.png", "probe.png", "affinity.png"):
        assert (tmp_path / "advice" / png).stat().st_size > 1000 and f"]({png})" in markdown
    # the features went through the feature cache, one entry per candidate; the random-init control of a candidate
    # that is already random-init (seeded: the same weights) is that candidate's entry, found again
    assert len(list((tmp_path / "cache").iterdir())) == 2
    assert report["random_init_control"]["logme"] == report["backbones"][best]["logme"]
    again = advise_recipe(recipe, ["test_efficientnet_gn@none", "test_efficientnet@none"], max_samples=48,
                   output_dir=tmp_path / "advice2", affinity_steps=5, probe_steps=20, plots=False)
    assert again["backbones"] == report["backbones"] and again["affinity"] == report["affinity"]


def test_advise_on_a_dataset_with_backbone_names(data_file, tmp_path):
    """The library call without a recipe: a dataset, task specs and backbone names built by the default factory."""
    from datasets import load_dataset

    train = load_dataset("json", data_files=str(data_file), split="train")
    train = train.map(lambda row: {"image": str(data_file.parent / row["image"])})
    report = advise(train, MIXED_TASKS, ["test_efficientnet@none"], output_dir=tmp_path / "advice",
                    input_column="image", build_model=backbone_factory(MIXED_TASKS, image_size=32), max_samples=32,
                    affinity_steps=3, probe_steps=10, plots=False)
    assert report["num_samples"] == 32 and report["recipe"] is None
    assert report["recommended_backbone"] == {"name": "test_efficientnet", "weights": "none",
                                              "mean_logme": pytest.approx(report["backbones"]["test_efficientnet"]
                                                                          ["mean_logme"], abs=1e-5)}
    assert (tmp_path / "advice" / "feature_cache").is_dir() and (tmp_path / "advice" / "advice.md").is_file()
    with pytest.raises(ValueError, match="input column 'pixels'"):
        advise(train, MIXED_TASKS, ["test_efficientnet@none"], output_dir=tmp_path / "x", input_column="pixels")


def test_cli_advise(data_file, tmp_path):
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(data_file, tmp_path / "out"))
    result = run_cli("advise", str(recipe), "--max-samples", "40", "--output-dir", str(tmp_path / "advice"),
                     "--affinity-steps", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "# hf-mtl advice" in result.stdout and "Freeze policy" in result.stdout
    assert json.loads((tmp_path / "advice" / "advice.json").read_text())["num_samples"] == 40
    bad = run_cli("advise", str(recipe), "--backbones", "@none", "--output-dir", str(tmp_path / "x"))
    assert bad.returncode == 2 and "give a backbone name" in bad.stderr


def test_data_report_counts_and_inequality():
    specs = [TaskSpec(name="tags", type="multilabel", labels=["a", "b"]),
             TaskSpec(name="kind", type="multiclass", labels=["x", "y", "z"]),
             TaskSpec(name="score", type="regression")]
    labels = {"tags": torch.tensor([[1.0, 0.0], [1.0, -100.0], [-100.0, -100.0], [0.0, 1.0]]),
              "kind": torch.tensor([0, 2, -100, -100]),
              "score": torch.tensor([0.5, float("nan"), float("nan"), float("nan")])}
    report = data_report(specs, labels)
    assert report["num_samples"] == 4
    assert report["tasks"]["tags"]["labelled_samples"] == 3
    assert report["tasks"]["tags"]["labels"]["a"] == {"present": 3, "mean": pytest.approx(2 / 3, abs=1e-6)}
    assert report["tasks"]["tags"]["labels"]["b"] == {"present": 2, "mean": 0.5}
    assert report["tasks"]["kind"]["labels"]["z"] == {"present": 2, "mean": 0.5}
    assert report["tasks"]["score"]["labelled_samples"] == 1 and report["labelled_max_over_min"] == 3.0
    assert gini([5, 5, 5]) == 0.0 and gini([0, 0, 9]) == pytest.approx(2 / 3)
    assert parse_candidate("resnet18@none") == ("resnet18", "none") and parse_candidate("x") == ("x", "pretrained")


def test_probe_prefers_informative_features():
    g = torch.Generator().manual_seed(0)
    signal = torch.randn(300, 1, generator=g)
    specs = [TaskSpec(name="flag", type="binary"), TaskSpec(name="value", type="regression")]
    labels = {"flag": (signal[:, 0] > 0).float(), "value": signal[:, 0] + 0.1 * torch.randn(300, generator=g)}
    good = probe(torch.cat([signal, torch.randn(300, 7, generator=g)], 1), labels, specs)
    noise = probe(torch.randn(300, 8, generator=g), labels, specs)
    assert good["metrics"]["flag"]["roc_auc"] > 0.9 > 0.7 > noise["metrics"]["flag"]["roc_auc"]
    assert good["val_loss"]["value"] < noise["val_loss"]["value"] / 5
    assert good["train_rows"] == 240 and good["validation_rows"] == 60
