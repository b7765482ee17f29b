"""A real `accelerate launch --num_processes 2` on CPU (gloo) trains the same weights as one process with twice the
batch, with missing labels spread unevenly over the processes and part of the backbone frozen."""

from __future__ import annotations

import pytest
import torch

from tests.multiprocess import accelerate_launch, requires_accelerate
from tests.recipe_helpers import load_weights, tiny_recipe, write_image_dataset, write_recipe

pytestmark = [requires_accelerate, pytest.mark.slow]


def _launch(num_processes: int, recipe, tmp_path, *overrides: str):
    # hf_mtl's recipe parser sets use_cpu, so the torchrun-launched processes form one gloo group
    return accelerate_launch(["-m", "hf_mtl.cli", "train", str(recipe), *overrides], tmp_path,
                             num_processes=num_processes).check()


def test_two_processes_equal_one_process_with_twice_the_batch(tmp_path):
    data = write_image_dataset(tmp_path / "data", 40, seed=1, missing=0.4)
    # top_n freezes the lower backbone (unused by backward: DDP must cope without ddp_find_unused_parameters);
    # missing=0.4 gives each process a different number of present labels per task in most steps.
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe(data, tmp_path / "unused", max_steps=4, freeze_policy="top_n", freeze_top_n=1,
                    heads_only_epochs=1, max_eval_samples=8, validation_split=0.2, save_strategy="steps", save_steps=2,
                    final_model="last"),  # the fine-tuned weights are what 1 and 2 processes must agree on
    )
    two = _launch(2, recipe, tmp_path, "--output_dir", str(tmp_path / "two"), "--per_device_train_batch_size", "4")
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in two.stderr  # the two processes really formed one group
    # every trainable parameter is used (all heads, the unfrozen top block): DDP is not told to search for unused ones
    assert "did not find any unused parameters" not in two.stderr
    # Atomic checkpoints (hf_mtl.checkpointing): both processes wrote their RNG state into the one staging folder, the
    # main process renamed it once, and no staging folder is left.
    for step in (2, 4):
        names = {p.name for p in (tmp_path / "two" / f"checkpoint-{step}").iterdir()}
        assert {"trainer_state.json", "model.safetensors", "rng_state_0.pth", "rng_state_1.pth"} <= names, names
    assert not [p.name for p in (tmp_path / "two").iterdir() if p.name.startswith("_tmp-")]
    _launch(1, recipe, tmp_path, "--output_dir", str(tmp_path / "one"), "--per_device_train_batch_size", "8")
    w2, w1 = load_weights(tmp_path / "two"), load_weights(tmp_path / "one")
    initial = _initial_weights(tmp_path)
    assert w1.keys() == w2.keys()
    for prefix in ("heads.", "backbone.model.blocks.4."):  # the heads and the unfrozen top block trained
        assert any(k.startswith(prefix) and not torch.equal(w1[k], initial[k]) for k in w1), prefix
    assert all(torch.equal(w1[k], initial[k]) for k in w1 if k.startswith("backbone.model.blocks.0."))  # frozen
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=1e-4, atol=1e-4, msg=lambda m, k=key: f"{k}: {m}")


def _initial_weights(tmp_path):  # noqa: ARG001
    """The untrained model of the recipe (same seed), to check that the compared weights really trained."""
    from hf_mtl import MultiTaskModel
    from tests.tiny_models import MIXED_TASKS

    torch.manual_seed(0)
    from transformers import set_seed

    set_seed(0)
    model = MultiTaskModel.from_backbone("test_efficientnet_gn", MIXED_TASKS, library="timm", weights=False)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
