"""Sharded training: a recipe with ``fsdp: true`` + ``fsdp_config: {version: 2}`` runs FSDP2 (``fully_shard``) on 2
CPU processes (gloo) and trains the weights DDP trains, through the heads-only stage and a partly frozen backbone;
its model folder holds one safetensors model that ``AutoModel`` loads on one process; a resumed FSDP run ends where
the uninterrupted one does, with checkpoints of either ``state_dict_type`` (full state dicts gathered on the first
process, or each process's shard through ``torch.distributed.checkpoint``)."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.multiprocess import accelerate_launch, requires_accelerate
from tests.recipe_helpers import load_weights, tiny_recipe, write_image_dataset, write_recipe

pytestmark = [requires_accelerate, pytest.mark.slow]

FSDP = {"fsdp": True, "fsdp_config": {"version": 2}}  # transformers' default state_dict_type: FULL_STATE_DICT
FSDP_SHARDED = {"fsdp": True, "fsdp_config": {"version": 2, "state_dict_type": "SHARDED_STATE_DICT"}}


def _launch(recipe, tmp_path, output_dir, *overrides: str):
    return accelerate_launch(["-m", "hf_mtl.cli", "train", str(recipe), "--output_dir", str(output_dir), *overrides],
                             tmp_path, num_processes=2).check()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One DDP and one FSDP run of the same recipe: heads-only stage, then the top backbone block and the heads train
    (the lower blocks stay frozen), checkpoints at steps 2 and 4. SGD with momentum: linear in the gradients, so the
    comparison is not blurred by Adam's division by tiny second moments; its momentum is optimizer state to resume."""
    tmp = tmp_path_factory.mktemp("fsdp")
    data = write_image_dataset(tmp / "data", 40, seed=1, missing=0.4)
    base = tiny_recipe(data, tmp / "unused", max_steps=4, freeze_policy="top_n", freeze_top_n=1, heads_only_epochs=1,
                       max_eval_samples=8, validation_split=0.2, save_strategy="steps", save_steps=2,
                       final_model="last", optim="sgd", optim_args="momentum=0.9")
    ddp_recipe = write_recipe(tmp / "ddp.yaml", base)
    fsdp_recipe = write_recipe(tmp / "fsdp.yaml", {**base, **FSDP})
    ddp = _launch(ddp_recipe, tmp, tmp / "ddp")
    fsdp = _launch(fsdp_recipe, tmp, tmp / "fsdp")
    return {"tmp": tmp, "base": base, "recipe": fsdp_recipe, "ddp": ddp, "fsdp": fsdp}


@pytest.fixture(scope="module")
def sharded(runs):
    """The FSDP run again with sharded checkpoints (``state_dict_type: SHARDED_STATE_DICT``): each process writes its
    own shard of the model and optimizer state, and reads it back on resume, nothing is gathered on one process."""
    tmp = runs["tmp"]
    recipe = write_recipe(tmp / "fsdp_sharded.yaml", {**runs["base"], **FSDP_SHARDED})
    return {"recipe": recipe, "launch": _launch(recipe, tmp, tmp / "fsdp_sharded")}


def test_fsdp_trains_the_weights_ddp_trains(runs):
    tmp = runs["tmp"]
    log = runs["fsdp"].stdout + runs["fsdp"].stderr
    assert "FSDP2 on CPU (gloo): 2 processes shard the model" in log  # sharded, not a silent DDP fallback
    assert "FSDP2 on CPU" not in runs["ddp"].stdout + runs["ddp"].stderr
    # FSDP checkpoints: the sharded-training state (model and optimizer via torch.distributed.checkpoint's full state
    # dicts) beside the full safetensors model, both RNG states, one complete folder per step
    for step in (2, 4):
        names = {p.name for p in (tmp / "fsdp" / f"checkpoint-{step}").iterdir()}
        assert {"pytorch_model_fsdp.bin", "optimizer.bin", "model.safetensors", "trainer_state.json",
                "rng_state_0.pth", "rng_state_1.pth"} <= names, names
    ddp, fsdp = load_weights(tmp / "ddp"), load_weights(tmp / "fsdp")
    assert ddp.keys() == fsdp.keys()
    initial = load_weights(tmp / "fsdp" / "checkpoint-2")  # mid-run: the final weights moved on from there
    assert any(not torch.equal(fsdp[k], initial[k]) for k in fsdp if k.startswith("backbone.model.blocks.4."))
    for key in ddp:
        torch.testing.assert_close(fsdp[key], ddp[key], rtol=0, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")
    frozen = [k for k in fsdp if k.startswith("backbone.model.blocks.0.")]
    assert frozen and all(torch.equal(fsdp[k], initial[k]) for k in frozen)  # the frozen blocks stayed frozen


def test_fsdp_model_folder_loads_with_automodel_on_one_process(runs):
    from transformers import AutoModel

    import hf_mtl  # noqa: F401  (registers the multi-task model with the Auto classes)

    folder = runs["tmp"] / "fsdp"
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("model-*.safetensors")) and not (folder / "pytorch_model_fsdp.bin").exists()
    model = AutoModel.from_pretrained(folder)
    assert type(model).__name__ == "MultiTaskModel"
    saved = load_weights(folder)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    model.eval()
    with torch.no_grad():
        out = model(pixel_values=torch.randn(2, 3, 32, 32))
    assert set(out.logits) == {"tags", "kind", "score", "flag"}


@pytest.mark.parametrize("state_dict_type", ["FULL_STATE_DICT", "SHARDED_STATE_DICT"])
def test_fsdp_resumed_run_ends_where_the_uninterrupted_one_does(runs, state_dict_type, request):
    tmp = runs["tmp"]
    if state_dict_type == "FULL_STATE_DICT":
        recipe, uninterrupted = runs["recipe"], tmp / "fsdp"
    else:
        recipe, uninterrupted = request.getfixturevalue("sharded")["recipe"], tmp / "fsdp_sharded"
    resumed = tmp / f"resumed_{state_dict_type.lower()}"
    resumed.mkdir()
    shutil.copytree(uninterrupted / "checkpoint-2", resumed / "checkpoint-2")  # an FSDP run stopped after step 2
    launch = _launch(recipe, tmp, resumed, "--resume_from_checkpoint", "true")
    log = launch.stdout + launch.stderr
    assert "resuming from the last complete checkpoint" in log and "checkpoint-2" in log  # resumed, not restarted
    full, again = load_weights(uninterrupted), load_weights(resumed)
    assert full.keys() == again.keys()
    for key in full:
        torch.testing.assert_close(again[key], full[key], rtol=0, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")


def test_fsdp_sharded_checkpoints_and_one_model_file(runs, sharded):
    """``SHARDED_STATE_DICT``: checkpoints hold torch.distributed.checkpoint folders (no gathered ``.bin``) and still a
    full ``model.safetensors``; the run trains what the full-state-dict run trains (only the file format differs); the
    final model folder is one safetensors model that ``AutoModel`` loads on one process."""
    from transformers import AutoModel

    import hf_mtl  # noqa: F401  (registers the multi-task model with the Auto classes)

    tmp = runs["tmp"]
    assert "FSDP2 on CPU (gloo): 2 processes shard the model" in sharded["launch"].stdout + sharded["launch"].stderr
    for step in (2, 4):
        folder = tmp / "fsdp_sharded" / f"checkpoint-{step}"
        names = {p.name for p in folder.iterdir()}
        assert {"pytorch_model_fsdp_0", "optimizer_0", "model.safetensors", "trainer_state.json", "rng_state_0.pth",
                "rng_state_1.pth"} <= names, names
        assert not {"pytorch_model_fsdp.bin", "optimizer.bin"} & names, names
        assert (folder / "pytorch_model_fsdp_0" / ".metadata").is_file()  # a complete torch.distributed.checkpoint
    folder = tmp / "fsdp_sharded"
    assert not list(folder.glob("model-*.safetensors")) and not (folder / "pytorch_model_fsdp_0").exists()
    full, saved = load_weights(tmp / "fsdp"), load_weights(folder)
    assert full.keys() == saved.keys()
    for key in full:
        torch.testing.assert_close(saved[key], full[key], rtol=0, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")
    model = AutoModel.from_pretrained(folder)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


def test_scale_fsdp_benchmark_quick(tmp_path):
    """benchmarks/scale_fsdp.py --quick: both engines really launch, FSDP really shards (half the state per process)."""
    from benchmarks import scale_fsdp
    from tests.test_benchmarks import check_report

    report = scale_fsdp.main(["--quick", "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "scale_fsdp")
    ddp, fsdp = results["variants"]["ddp"], results["variants"]["fsdp"]
    assert fsdp["sharded"] and not ddp["sharded"]
    for ranks in (ddp["per_rank"], fsdp["per_rank"]):
        assert [r["rank"] for r in ranks] == [0, 1] and all(r["peak_rss_bytes"] > r["param_bytes"] > 0 for r in ranks)
    # each FSDP process holds about half of the parameters (shards are padded to equal sizes)
    assert 0.45 < results["state_ratio_fsdp_to_ddp"] < 0.6
