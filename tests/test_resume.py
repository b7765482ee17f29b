"""Resume: a run interrupted after a checkpoint and resumed with `--resume_from_checkpoint` ends with the weights of an
uninterrupted run (same seed), with a heads-only stage and dropout in play.

Random augmentation is off here: accelerate's dataloader fetches one batch ahead, so the RNG state saved in a
checkpoint has already drawn the next batch's augmentation, and a resumed run augments that batch differently
(documented in the README's recipes section)."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback

from hf_mtl.scripts.train import main as train_main
from tests.recipe_helpers import load_weights, tiny_recipe, write_image_dataset, write_recipe
from tests.tiny_models import MIXED_TASKS


class StopAfterCheckpoint(TrainerCallback):
    """Ends training right after the checkpoint of ``step`` is written: the interruption."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    data = write_image_dataset(tmp_path / "data", 24, seed=2)
    tasks = [dict(task, dropout=0.2) if task["name"] == "kind" else task for task in MIXED_TASKS]
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe(data, tmp_path / "unused", tasks=tasks, augment=False, heads_only_epochs=1, freeze_policy="full",
                    max_steps=6, save_strategy="steps", save_steps=3, max_eval_samples=4,
                    final_model="last"),  # the training itself; a resumed run skips the heads-only stage it compares
    )
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_main([str(recipe), "--output_dir", str(full)])
    stopped = train_main([str(recipe), "--output_dir", str(cut)], callbacks=[StopAfterCheckpoint(3)])
    assert stopped == {} and (cut / "checkpoint-3").is_dir() and not (cut / "model.safetensors").exists()
    interrupted = load_weights(cut / "checkpoint-3")
    train_main([str(recipe), "--output_dir", str(cut), "--resume_from_checkpoint", str(cut / "checkpoint-3")])
    expected, resumed = load_weights(full), load_weights(cut)
    assert expected.keys() == resumed.keys()
    assert any(not torch.equal(interrupted[k], resumed[k]) for k in resumed)  # the resumed run did train
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], msg=lambda m, k=key: f"{k}: {m}")
