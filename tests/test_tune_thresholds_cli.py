"""Threshold tuning from a recipe (`tune_thresholds: f1`) and from the command line (`hf-mtl tune-thresholds`): the
thresholds land in config.json, the card shows them, and predict decides with them."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.template_data import TAGS, run_main, template_model, user_recipe, write_template_imagefolder  # noqa: F401

pytestmark = pytest.mark.slow  # a template recipe is trained once (about 20 s)


def _thresholds(folder) -> dict[str, list[float] | None]:
    config = json.loads((folder / "config.json").read_text())
    return {task["name"]: task["thresholds"] for task in config["tasks"]}


def test_recipe_tunes_after_training_into_config_and_card(template_model):  # noqa: F811
    model, out = template_model["model"], template_model["train_output"]
    thresholds = _thresholds(model)
    assert len(thresholds["tags"]) == len(TAGS) and len(thresholds["defect"]) == 1
    assert thresholds["scene"] is None and thresholds["quality"] is None
    # in the words of `hf-mtl eval`'s header (the template recipe's max_eval_samples: 5)
    where = f"split 'validation' of imagefolder {template_model['data']}: 5 rows (the first 5: max_eval_samples)"
    assert f"== thresholds tuned (f1) on {where};" in out
    report = json.loads((model / "threshold_tuning.json").read_text())
    assert report["data"] == where
    assert report["objective"] == "f1" and report["thresholds"] == {"tags": thresholds["tags"],
                                                                     "defect": thresholds["defect"]}
    for row in report["table"]:  # F1 on the tuning rows never drops: the F1-maximising threshold includes 0.5's
        if row["f1_before"] is not None:
            assert row["f1"] >= row["f1_before"] - 1e-9, row
    card = (model / "README.md").read_text()
    shown = ", ".join(f"`{name}` {value:.4g}" for name, value in zip(TAGS, thresholds["tags"]))
    assert f"- **Thresholds:** {shown}" in card
    assert f"- **Thresholds:** `defect` {thresholds['defect'][0]:.4g}" in card


def test_tune_thresholds_command_updates_the_config_and_predict_uses_it(template_model, tmp_path):  # noqa: F811
    import hf_mtl

    model = tmp_path / "model"
    shutil.copytree(template_model["model"], model)
    weights = (model / "model.safetensors").read_bytes()
    code, out = run_main("tune-thresholds", str(model), str(template_model["recipe"]), "--objective", "recall",
                         "--target", "1.0")
    assert code == 0, out[-3000:]
    assert f"data:  split 'validation' of imagefolder {template_model['data']}: 10 rows" in out
    assert "== thresholds tuned (recall >= 1.0) on validation: before -> after, on the same rows ==" in out
    assert (model / "model.safetensors").read_bytes() == weights  # only config.json changed
    tuned = _thresholds(model)
    assert tuned != _thresholds(template_model["model"])
    # the local card hf_mtl wrote is rendered again with the tuned thresholds (what `hf-mtl push` publishes)
    assert f"card: {model / 'README.md'} (with the tuned thresholds)" in out
    assert f"`defect` {tuned['defect'][0]:.4g}" in (model / "README.md").read_text()

    # recall 1 on the tuning rows: every present positive of `defect` scores at least its threshold
    validation = template_model["data"] / "validation"
    rows = [json.loads(line) for line in (validation / "metadata.jsonl").read_text().splitlines()]
    loaded = hf_mtl.MultiTaskModel.from_pretrained(model)
    predictions = loaded.predict([str(validation / row["file_name"]) for row in rows])
    positives = [p["defect"]["positive_score"] for p, row in zip(predictions, rows) if row["defect"] is True]
    assert positives and min(positives) >= tuned["defect"][0]
    for prediction in predictions:  # ... and predict decides with the tuned threshold
        decoded = prediction["defect"]
        assert decoded["label"] == ("defect" if decoded["positive_score"] >= tuned["defect"][0] else "ok")
        assert decoded["score"] == pytest.approx(decoded["positive_score"] if decoded["label"] == "defect"
                                                 else 1 - decoded["positive_score"])
    code, out = run_main("predict", str(model), str(validation / rows[0]["file_name"]))
    from_cli = json.loads(out.strip().splitlines()[-1])["defect"]
    assert code == 0 and from_cli == pytest.approx(predictions[0]["defect"], abs=1e-5)


def test_tuning_errors_come_before_any_work(template_model, tmp_path, capsys):  # noqa: F811
    model, recipe = template_model["model"], template_model["recipe"]
    assert run_main("tune-thresholds", str(model), str(recipe), "--objective", "precision")[0] == 2
    assert "`--objective precision` needs `--target` in (0, 1]" in capsys.readouterr().err
    assert run_main("tune-thresholds", "someone/some-model", str(recipe))[0] == 2
    assert "give --save_to FOLDER" in capsys.readouterr().err
    data = write_template_imagefolder(tmp_path / "data", {"train": 8, "validation": 4})
    only_scene = user_recipe(tmp_path / "r.yaml", data, tmp_path / "out",
                             tasks=[{"name": "scene", "type": "multiclass", "labels": ["park", "beach", "street", "home"]}])
    assert run_main("train", str(only_scene))[0] == 2
    assert "`tune_thresholds`: no task has thresholds" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert run_main("train", str(only_scene), "tune_thresholds=recall")[0] == 2
    assert "`tune_thresholds: recall` needs `threshold_target` in (0, 1]" in capsys.readouterr().err
