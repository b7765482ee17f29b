"""Pins of the transformers behaviour that MultiTaskTrainer's remaining private overrides rely on.

``_save_checkpoint`` (atomic checkpoints), ``_push_from_checkpoint`` (no pickle pushed, failures logged) and
``_load_optimizer_and_scheduler`` (balancer state restored on resume) follow the installed transformers' private methods;
transformers has no public hook around the checkpoint folder's write and publication. If an upgrade changes what these
methods do, a test here fails and names what to re-check in hf_mtl/trainer.py.
"""

from __future__ import annotations

import inspect

from transformers import Trainer

from hf_mtl.trainer import MultiTaskTrainer

CHECKPOINT_STEPS = (
    "self.store_flos()",
    "self.save_model(",
    "self._save_optimizer_and_scheduler(",
    "self._save_scaler(",
    "self._save_rng_state(",
    "ExportableState)",  # callbacks whose state goes into trainer_state.json
    "self.state.save_to_json(",
    "self._push_from_checkpoint(",
    "rotate_checkpoints(",
)


def _positions(source: str, steps: tuple[str, ...]) -> list[int]:
    missing = [step for step in steps if step not in source]
    assert not missing, f"transformers' method no longer does {missing}: re-check MultiTaskTrainer's override"
    return [source.index(step) for step in steps]


def test_stock_save_checkpoint_writes_what_the_atomic_override_writes_in_the_same_order():
    stock = _positions(inspect.getsource(Trainer._save_checkpoint), CHECKPOINT_STEPS)
    assert stock == sorted(stock)
    ours = _positions(inspect.getsource(MultiTaskTrainer._save_checkpoint), CHECKPOINT_STEPS)
    assert ours == sorted(ours)
    # ours publishes (renames) the staging folder before it is pushed and rotated
    source = inspect.getsource(MultiTaskTrainer._save_checkpoint)
    assert source.index("publish_checkpoint(") < source.index("self._push_from_checkpoint(")


def test_stock_push_from_checkpoint_still_pickles_the_arguments_and_skips_staging_folders():
    source = inspect.getsource(Trainer._push_from_checkpoint)
    assert "torch.save(self.args" in source  # the pickle MultiTaskTrainer keeps off the Hub (training_args.json)
    assert 'ignore_patterns=["_*", f"{PREFIX_CHECKPOINT_DIR}-*"]' in source  # staging folders start with "_"
    assert "run_as_future=True" in source and "on_push_begin" in source


def test_stock_training_loop_restores_optimizer_state_through_the_overridden_loader():
    source = inspect.getsource(Trainer._prepare_for_training)
    assert "self._load_optimizer_and_scheduler(resume_from_checkpoint)" in source
    assert "self._save_checkpoint(model, trial)" in inspect.getsource(Trainer._maybe_log_save_evaluate)
