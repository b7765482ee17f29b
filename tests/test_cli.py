"""`hf-mtl` end to end in fresh processes: train a tiny recipe, then eval, predict and push the saved folder."""

from __future__ import annotations

import json

import pytest

from tests.hub_fixtures import LocalHubHandle
from tests.recipe_helpers import run_cli, tiny_recipe, write_image_dataset, write_recipe

pytestmark = pytest.mark.slow  # each test runs the CLI in fresh processes


def test_train_eval_predict_push(tmp_path, local_hub: LocalHubHandle):
    data = write_image_dataset(tmp_path / "data", 24)
    out = tmp_path / "model"
    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_recipe(data, out, heads_only_epochs=1, max_steps=2))

    trained = run_cli("train", str(recipe), "--learning_rate", "0.02", "freeze_policy=full")
    assert trained.returncode == 0, trained.stderr[-4000:]
    assert "== after the heads-only stage ==" in trained.stdout and "== evaluation" in trained.stdout
    for task in ("[tags] (multilabel)", "[kind] (multiclass)", "[score] (regression)", "[flag] (binary)"):
        assert task in trained.stdout
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "eval_results.json",
            "per_label_metrics.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) and name != "training_args.bin" for name in files)
    metrics = json.loads((out / "eval_results.json").read_text())
    assert "eval_kind_accuracy" in metrics and "eval_tags_macro_roc_auc" in metrics
    state = json.loads((out / "trainer_state.json").read_text()) if (out / "trainer_state.json").exists() else None
    assert state is None or state["global_step"] == 2
    per_label = json.loads((out / "per_label_metrics.json").read_text())
    assert set(per_label["tags"]) == {"a", "b", "c"}

    image = str(data.parent / "images" / "0.png")
    predicted = run_cli("predict", str(out), image, "--top_k", "2")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    line = json.loads(predicted.stdout.strip().splitlines()[-1])
    assert line["input"] == image and set(line) == {"input", "tags", "kind", "score", "flag"}
    assert len(line["kind"]["top_k"]) == 2 and "value" in line["score"]

    evaluated = run_cli("eval", str(out), str(recipe))
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "[kind] (multiclass) accuracy=" in evaluated.stdout

    repo_id = local_hub.repo_id("tiny-cli-model")
    pushed = run_cli("push", str(out), repo_id, "--space_app", str(tmp_path / "space"), env={"HF_HUB_OFFLINE": "0"})
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert f'MultiTaskModel.from_pretrained("{repo_id}")' in (tmp_path / "space" / "app.py").read_text()
    remote = set(local_hub.api().list_repo_files(repo_id))
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md"} <= remote
    assert local_hub.token not in pushed.stdout + pushed.stderr


def test_cli_errors_are_one_line_and_exit_2(tmp_path):
    result = run_cli("train", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "recipe file" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("predict", str(tmp_path / "no_model"), "x.png")
    assert result.returncode == 2 and "no_model" in result.stderr
