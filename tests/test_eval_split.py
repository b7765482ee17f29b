"""`hf-mtl eval` on any split, file or folder: only those rows are read, every row unless `max_eval_samples` is asked
for, a header says what was evaluated, and the results land next to the model as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_mtl.scripts.arguments import RecipeError, parse_overrides, parse_recipe
from tests.recipe_helpers import tiny_recipe, write_image_dataset, write_recipe
from tests.template_data import run_main, template_model  # noqa: F401 - the session fixture

pytestmark = pytest.mark.slow  # a template recipe is trained once (about 20 s), then evaluated several times


def _results(model: Path, name: str) -> dict:
    return json.loads((model / f"eval_{name}_results.json").read_text())


def test_eval_a_test_split_never_reads_the_training_data(template_model):  # noqa: F811
    model, data, recipe = template_model["model"], template_model["data"], template_model["recipe"]
    code, out = run_main("eval", str(model), str(recipe), "--split", "test")  # train/ is unreadable by now
    assert code == 0, out[-3000:]
    assert f"model: {model}" in out
    assert f"data:  split 'test' of imagefolder {data}: 12 rows" in out  # the recipe's max_eval_samples: 5 is not used
    assert "== evaluation (test, present labels only) ==" in out and "[defect] (binary) roc_auc=" in out
    result = _results(model, "test")
    assert result["rows"] == result["total_rows"] == 12
    assert result["data"]["split"] == "test" and result["data"]["data_dir"] == str(data)
    assert {"eval_tags_macro_roc_auc", "eval_scene_accuracy", "eval_defect_f1", "eval_quality_mae"} <= set(
        result["metrics"])
    assert list(result["per_label_metrics"]["defect"]) == ["defect"]  # one name per outcome: the positive label

    # the same rows as a folder and as a file give the same numbers
    code, out = run_main("eval", str(model), str(recipe), "--data_dir", str(data / "test"))
    assert code == 0 and f"data:  imagefolder {data / 'test'}: 12 rows" in out
    folder = _results(model, "test")["metrics"]
    lines = [json.loads(line) for line in (data / "test" / "metadata.jsonl").read_text().splitlines()]
    file = data.parent / "test_rows.jsonl"
    file.write_text("\n".join(json.dumps({"image": f"data/test/{row.pop('file_name')}", **row}) for row in lines))
    code, out = run_main("eval", str(model), str(recipe), "--file", str(file))
    assert code == 0 and f"data:  file {file}: 12 rows" in out
    from_file = _results(model, "test_rows.jsonl")
    assert from_file["data"]["file"] == str(file)
    for key, value in result["metrics"].items():
        if key.startswith(("eval_tags", "eval_scene", "eval_defect", "eval_quality", "eval_main_score", "eval_loss")):
            assert folder[key] == pytest.approx(value) and from_file["metrics"][key] == pytest.approx(value), key


def test_max_eval_samples_only_when_asked_and_the_header_says_so(template_model):  # noqa: F811
    model, recipe = template_model["model"], template_model["recipe"]
    code, out = run_main("eval", str(model), str(recipe), "max_eval_samples=5")  # default: the validation split
    assert code == 0, out[-3000:]
    assert f"split 'validation' of imagefolder {template_model['data']}: 5 rows (the first 5 of 10: " \
           "max_eval_samples)" in out
    assert _results(model, "validation")["rows"] == 5


def test_eval_errors_name_what_is_wrong(template_model, capsys):  # noqa: F811
    model, recipe, data = template_model["model"], template_model["recipe"], template_model["data"]
    assert run_main("eval", str(model), str(recipe), "--split", "holdout")[0] == 2
    assert "has no split 'holdout'; its splits: ['train', 'validation', 'test']" in capsys.readouterr().err
    assert run_main("eval", str(model), str(recipe), "--file", str(data / "nope.jsonl"))[0] == 2
    assert "nope.jsonl' does not exist" in capsys.readouterr().err
    assert run_main("eval", str(model), str(recipe), "--split", "train")[0] == 2  # made unreadable by the fixture
    assert "split 'train' of the imagefolder" in capsys.readouterr().err
    assert run_main("eval", str(model), str(recipe), "--data_dir", str(data))[0] == 2  # which split?
    assert "has the splits ['train', 'validation', 'test']: choose one with --split" in capsys.readouterr().err


def test_files_recipe_splits_and_the_held_out_share(tmp_path):
    """A json recipe: `--split test` reads `test_file` alone; with no validation file the default is the share training
    held out (the same rows), and `validation_file=null` unsets a key from the command line."""
    import hf_mtl
    from tests.tiny_models import IMAGE_SIZE, timm_model

    train, test = write_image_dataset(tmp_path / "train", 24), write_image_dataset(tmp_path / "test", 7, seed=3)
    model = timm_model(seed=2)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    hf_mtl.build_processor(model, image_size=IMAGE_SIZE).save_pretrained(folder)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(train, tmp_path / "out", test_file=str(test),
                                                           validation_file=str(test)))
    code, out = run_main("eval", str(folder), str(recipe), "--split", "test")
    assert code == 0 and f"data:  split 'test' of the recipe's data: test_file {test}: 7 rows" in out
    train.write_text("{broken\n")  # --split test never reads it ...
    assert run_main("eval", str(folder), str(recipe), "--split", "test")[0] == 0
    write_image_dataset(tmp_path / "train", 24)  # ... the held-out share must
    code, out = run_main("eval", str(folder), str(recipe), "validation_file=null")
    assert code == 0, out[-2000:]
    assert f"data:  split 'validation', a 25% hold-out (seed 0) of train_file {train}: 6 rows" in out
    code, again = run_main("eval", str(folder), str(recipe), "--no-validation-file", "--split", "validation")
    assert code == 0 and _results(folder, "validation")["rows"] == 6
    assert run_main("eval", str(folder), str(recipe), "--no_test_file", "--split", "test")[0] == 2


def test_a_key_is_unset_with_null_or_no_key(tmp_path):
    recipe = tiny_recipe(write_image_dataset(tmp_path, 4), tmp_path / "out", validation_file=str(tmp_path / "data.jsonl"))
    assert parse_overrides(["--no-validation-file", "--no_augment", "data_dir=null"]) == {
        "validation_file": "null", "augment": "false", "data_dir": "null"}
    _, data_args, _, _ = parse_recipe(recipe, ["--no-validation-file"])
    assert data_args.validation_file is None and data_args.augment is False
    _, data_args, _, args = parse_recipe(recipe, ["validation_file=null", "--no_augment", "weights=none"])
    assert data_args.validation_file is None
    # overrides as a Python dict: None unsets too (it once became the text "None": a folder named None)
    _, data_args, _, args = parse_recipe(recipe, {"validation_file": None, "feature_cache_dir": None})
    assert data_args.validation_file is None and args.feature_cache_dir is None
    with pytest.raises(RecipeError, match=r"key 'learning_rate' cannot be unset .*: it must be float"):
        parse_recipe(recipe, ["learning_rate=null"])
    with pytest.raises(RecipeError, match=r"set `dataset`"):
        parse_recipe(recipe, ["--no_dataset"])  # unset, then required: the usual error names it


def test_built_in_data_splits(tmp_path, capsys):
    """Built-in data: `max_eval_samples` still sets how many rows are generated; it has no separate test split."""
    import hf_mtl
    from tests.recipe_helpers import REPO
    from tests.tiny_models import IMAGE_SIZE, timm_model

    try:
        from hf_mtl.scripts.demo_data import FASHION_MNIST_CLASSES, fashion_mnist_dir

        fashion_mnist_dir()
    except (ImportError, FileNotFoundError) as err:
        pytest.skip(f"Fashion-MNIST missing: {err}")
    model = timm_model([{"name": "present", "type": "multilabel", "labels": list(FASHION_MNIST_CLASSES)}])
    model.save_pretrained(tmp_path / "model")
    hf_mtl.build_processor(model, image_size=IMAGE_SIZE).save_pretrained(tmp_path / "model")
    recipe = str(REPO / "recipes" / "fashion_grid_efficientnet.yaml")
    code, out = run_main("eval", str(tmp_path / "model"), recipe, "max_eval_samples=16")
    assert code == 0, out[-2000:]
    assert "data:  split 'validation' of the built-in fashion_grid data (built from Fashion-MNIST's test images, " \
           "seed 1): 16 rows" in out
    assert _results(tmp_path / "model", "validation")["data"]["split"] == "validation"
    assert run_main("eval", str(tmp_path / "model"), recipe, "--split", "test")[0] == 2
    assert "has the splits train and validation" in capsys.readouterr().err


def test_retraining_into_the_folder_drops_eval_results_of_the_replaced_model(tmp_path):
    """`hf-mtl eval` results describe the weights they evaluated: a new training run into the same folder removes them,
    so neither its card nor a push presents them as the new model's."""
    train, test = write_image_dataset(tmp_path / "train", 16), write_image_dataset(tmp_path / "test", 5, seed=3)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(train, out, test_file=str(test)))
    assert run_main("train", str(recipe))[0] == 0
    code, log = run_main("eval", str(out), str(recipe), "--split", "test")
    assert code == 0, log[-2000:]
    assert (out / "eval_test_results.json").is_file() and "### Other evaluations" in (out / "README.md").read_text()
    code, log = run_main("train", str(recipe))
    assert code == 0, log[-2000:]
    assert not (out / "eval_test_results.json").exists()
    assert "### Other evaluations" not in (out / "README.md").read_text()
