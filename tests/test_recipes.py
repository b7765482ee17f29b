"""Recipes: YAML + override parsing, validation errors before any work, the shipped recipe files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hf_mtl.scripts.arguments import RecipeError, parse_overrides, parse_recipe
from tests.recipe_helpers import REPO, run_cli, tiny_recipe, write_image_dataset, write_recipe


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    return write_image_dataset(tmp_path_factory.mktemp("recipe_data"), 24)


def test_yaml_and_overrides(tmp_path, data_file):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data_file, tmp_path / "out", learning_rate="1e-3"))
    model_args, data_args, script_args, args = parse_recipe(
        recipe,
        ["--learning_rate", "5e-4", "max_steps=7", "--no_augment", "--heads_only_epochs=2",
         "label_columns={kind: kind}", "--report_to", "none"],
    )
    assert args.learning_rate == 5e-4 and args.max_steps == 7  # the command line wins over the file
    assert data_args.augment is False and script_args.heads_only_epochs == 2.0
    assert data_args.label_columns == {"kind": "kind"}
    assert model_args.backbone == "test_efficientnet_gn" and [t["name"] for t in model_args.tasks] == [
        "tags", "kind", "score", "flag"]
    assert args.remove_unused_columns is False  # MultiTaskTrainingArguments' own default survives
    # YAML's `1e-3` is a string to a YAML 1.1 reader: it still becomes a float
    _, _, _, args = parse_recipe(recipe)
    assert args.learning_rate == 1e-3
    assert parse_overrides(["--flag", "--x-y", "3", "a=b=c"]) == {"flag": "true", "x_y": "3", "a": "b=c"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"learnin_rate": 0.1}, r"unknown key 'learnin_rate'; did you mean 'learning_rate'"),
        ({"learning_rate": "fast"}, r"key 'learning_rate' must be float, got 'fast'"),
        ({"max_steps": 2.5}, r"key 'max_steps' must be int"),
        ({"augment": "maybe"}, r"key 'augment' must be bool"),
        ({"tasks": "tags"}, r"key 'tasks' must be list or null"),
        ({"train_file": "/no/such/file.jsonl"}, r"`train_file` path '/no/such/file.jsonl' does not exist"),
        ({"backbone": "resnet_that_does_not_exist", "backbone_library": "timm"}, r"`backbone` .* is not a timm model"),
        ({"weights": "/no/weights.safetensors"}, r"`weights` '/no/weights.safetensors' is not"),
        ({"tasks": [{"name": "t", "type": "multilabel"}]}, r"`tasks\[0\]`: task 't': a multilabel task needs"),
        ({"dataset": "no_such_dataset"}, r"`dataset` 'no_such_dataset' is neither"),
        ({"missing_rate": 1.5}, r"`missing_rate` must be in"),
    ],
)
def test_bad_recipes_name_the_key(tmp_path, data_file, change, message):
    recipe = write_recipe(tmp_path / "bad.yaml", tiny_recipe(data_file, tmp_path / "out", **change))
    with pytest.raises(RecipeError, match=message):
        parse_recipe(recipe)
    assert not (tmp_path / "out").exists()


def test_bad_override_and_unreadable_files(tmp_path, data_file):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data_file, tmp_path / "out"))
    with pytest.raises(RecipeError, match=r"command-line override: key 'max_steps' must be int, got 'ten'"):
        parse_recipe(recipe, ["max_steps=ten"])
    with pytest.raises(RecipeError, match=r"recipe file '.*missing.yaml' does not exist"):
        parse_recipe(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="must hold a mapping"):
        parse_recipe(tmp_path / "list.yaml")


@pytest.mark.slow
def test_cli_rejects_unknown_backbone_before_training(tmp_path, data_file):
    """A backbone that is no timm name, no folder and not on the (unreachable) Hub: exit 2, the key named, nothing run."""
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data_file, tmp_path / "out", backbone="no-org/no-model-xyz"))
    result = run_cli("train", str(recipe))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "`backbone` 'no-org/no-model-xyz' is neither a timm model name" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "recipes").glob("*.yaml")))
def test_shipped_recipes_parse_and_validate(name):
    """Every recipe in recipes/ parses and passes validation (data sources installed by `make setup`)."""
    path = REPO / "recipes" / name
    raw = yaml.safe_load(path.read_text())
    if raw.get("dataset") in ("json", "csv", "parquet", "imagefolder"):
        pytest.skip("the template names the user's own files")
    model_args, data_args, _, args = parse_recipe(path)
    assert args.output_dir.startswith("outputs/") and data_args.dataset and (model_args.tasks or model_args.model_name_or_path)


def test_template_recipe_documents_every_key_it_uses():
    template = REPO / "recipes" / "own_data_template.yaml"
    values = yaml.safe_load(template.read_text())
    from hf_mtl.scripts.arguments import check_values

    check_values(values, "template")  # every key is a real recipe key with the right type
    assert json.dumps(values)


def test_train_help_lists_every_recipe_key(capsys):
    from hf_mtl.cli import main

    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for key in ("--backbone", "--tasks", "--dataset", "--heads_only_epochs", "--freeze_policy", "--learning_rate"):
        assert key in out


def test_fine_tuning_stage_unfreezes_after_heads_only_when_no_policy_is_given(tmp_path, data_file):
    """Stage 1 freezes the backbone; a recipe with no `freeze_policy` must not silently keep it frozen in stage 2."""
    from transformers import TrainerCallback

    from hf_mtl.scripts.train import main

    seen: dict[str, bool] = {}

    class RecordTrainable(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen["backbone_trainable"] = all(p.requires_grad for p in model.backbone.parameters())

    recipe = tiny_recipe(data_file, tmp_path / "out", heads_only_epochs=1, max_steps=1)
    recipe.pop("freeze_policy", None)
    main([str(write_recipe(tmp_path / "r.yaml", recipe))], callbacks=[RecordTrainable()])
    assert seen == {"backbone_trainable": True}
