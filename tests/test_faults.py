"""Nothing lost on faults: a training process SIGKILLed mid-epoch or in the middle of writing a checkpoint resumes from
the last complete checkpoint to the weights of an uninterrupted run; a failed push keeps every file and says what was
and was not pushed.

The kills are real (``os.kill(os.getpid(), SIGKILL)`` inside the training subprocess, at a chosen step or between two
files of a checkpoint), so nothing after the kill point runs: no ``finally``, no atexit, no flush.

Run as ``python -m tests.test_faults <kill-at-step|kill-in-save> <step> <hf-mtl train arguments...>``, this module is
that training subprocess.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.recipe_helpers import REPO, load_weights, run_cli, tiny_recipe, write_image_dataset, write_recipe

MAX_STEPS, SAVE_STEPS = 6, 2  # 18 train rows / batch 4: 5 steps an epoch, so step 3 is mid-epoch


# --------------------------------------------------------------------------------------------- the killed subprocess
def _kill_self() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _child(argv: list[str]) -> None:
    """Train with a fault: ``kill-at-step N`` (after step N's update) or ``kill-in-save N`` (during checkpoint N's
    write, once its weights file is on disk and before its optimizer state and trainer state are)."""
    from transformers import TrainerCallback

    from hf_mtl.scripts.train import main
    from hf_mtl.trainer import MultiTaskTrainer

    mode, step, rest = argv[0], int(argv[1]), argv[2:]
    callbacks = []
    if mode == "kill-at-step":

        class KillAtStep(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == step:
                    _kill_self()

        callbacks.append(KillAtStep())
    elif mode == "kill-in-save":
        save_optimizer = MultiTaskTrainer._save_optimizer_and_scheduler

        def killing_save(self, output_dir):
            if self.state.global_step == step:
                if not os.path.isfile(os.path.join(output_dir, "model.safetensors")):
                    raise AssertionError(f"the weights of step {step} are not in {output_dir} yet")
                _kill_self()
            save_optimizer(self, output_dir)

        MultiTaskTrainer._save_optimizer_and_scheduler = killing_save
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    main(rest, callbacks=callbacks)


def run_killed(mode: str, step: int, *train_args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", "tests.test_faults", mode, str(step), *train_args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )


# ---------------------------------------------------------------------------------------------------- training faults
@pytest.fixture
def reference(tmp_path_factory):
    """The tiny recipe and the final weights of its uninterrupted run (shared by the kill tests), trained in a fresh
    process like the killed and resumed runs (one CPU thread each: the same kernels, so the same last bits)."""
    root = tmp_path_factory.mktemp("faults")
    data = write_image_dataset(root / "data", 24, seed=3)
    recipe = write_recipe(
        root / "r.yaml",
        tiny_recipe(data, root / "unused", max_steps=MAX_STEPS, save_strategy="steps", save_steps=SAVE_STEPS,
                    max_eval_samples=4),
    )
    full = root / "full"
    trained = run_cli("train", str(recipe), "--output_dir", str(full))
    assert trained.returncode == 0, trained.stderr[-4000:]
    return recipe, load_weights(full)


def _assert_same_weights(resumed: dict, expected: dict) -> None:
    assert expected.keys() == resumed.keys()
    for key in expected:  # same tolerance as tests/test_resume.py
        torch.testing.assert_close(resumed[key], expected[key], msg=lambda m, k=key: f"{k}: {m}")


def _complete(folder: Path) -> bool:
    return (folder / "trainer_state.json").is_file() and (folder / "model.safetensors").is_file()


def test_sigkill_mid_epoch_and_mid_checkpoint_write_then_resume_equals_uninterrupted(reference, tmp_path):
    """One run killed twice: mid-epoch after checkpoint-2; then, resumed from it, while writing checkpoint-4. The
    final ``--resume_from_checkpoint true`` still ends with the weights of the uninterrupted run."""
    from transformers.trainer_utils import get_last_checkpoint

    from hf_mtl.checkpointing import last_complete_checkpoint

    recipe, expected = reference
    out = tmp_path / "run"
    killed = run_killed("kill-at-step", 3, str(recipe), "--output_dir", str(out))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert _complete(out / "checkpoint-2") and not (out / "checkpoint-4").exists()
    assert not (out / "model.safetensors").exists()  # the run really died before its end

    # Resumed (auto lookup), then killed once checkpoint-4's weights are written but before the rest of it.
    killed = run_killed("kill-in-save", 4, str(recipe), "--output_dir", str(out), "--resume_from_checkpoint", "true")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert "resuming from the last complete checkpoint" in killed.stderr and "checkpoint-2" in killed.stderr
    staged = out / "tmp-checkpoint-4"
    # The half-written checkpoint stayed in its staging folder: weights there, trainer state never written.
    assert (staged / "model.safetensors").is_file() and not (staged / "trainer_state.json").exists()
    assert not (out / "checkpoint-4").exists() and _complete(out / "checkpoint-2")
    # Both lookups land on the intact checkpoint (the stock one too: the staging name is not a checkpoint name).
    assert last_complete_checkpoint(out) == get_last_checkpoint(str(out)) == str(out / "checkpoint-2")

    resumed = run_cli("train", str(recipe), "--output_dir", str(out), "--resume_from_checkpoint", "true")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    removal = [line for line in resumed.stderr.splitlines() if "removing" in line and "tmp-checkpoint-4" in line]
    assert removal and "interrupted" in removal[0]
    assert not staged.exists() and _complete(out / "checkpoint-4") and _complete(out / "checkpoint-6")
    _assert_same_weights(load_weights(out), expected)


# ------------------------------------------------------------------------------------------ checkpoint lookup (fast)
def _fake_checkpoint(folder: Path, complete: bool) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    if complete:
        (folder / "trainer_state.json").write_text("{}")
    return folder


def test_last_complete_checkpoint_skips_incomplete_and_staging_folders(tmp_path, caplog):
    from hf_mtl.checkpointing import last_complete_checkpoint, resolve_resume_checkpoint

    assert last_complete_checkpoint(tmp_path / "missing") is None
    with pytest.raises(ValueError, match="no complete checkpoint .* in output_dir"):
        resolve_resume_checkpoint("true", tmp_path)
    assert resolve_resume_checkpoint("auto", tmp_path) is None
    assert resolve_resume_checkpoint(None, tmp_path) is None and resolve_resume_checkpoint(False, tmp_path) is None

    good = _fake_checkpoint(tmp_path / "checkpoint-10", complete=True)
    _fake_checkpoint(tmp_path / "checkpoint-9", complete=True)
    cut = _fake_checkpoint(tmp_path / "checkpoint-20", complete=False)  # another tool's, or an older version's
    _fake_checkpoint(tmp_path / "tmp-checkpoint-30", complete=False)
    (tmp_path / "checkpoint-40").write_text("a file, not a folder")
    with caplog.at_level(logging.WARNING, logger="hf_mtl.checkpointing"):
        assert last_complete_checkpoint(tmp_path) == str(good)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint-20" in messages and "trainer_state.json" in messages and "tmp-checkpoint-30" in messages
    assert resolve_resume_checkpoint(True, tmp_path) == str(good) == resolve_resume_checkpoint("auto", tmp_path)
    with pytest.raises(ValueError, match="checkpoint-20.* not a complete checkpoint"):
        resolve_resume_checkpoint(str(cut), tmp_path)


def test_cli_resume_true_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    from hf_mtl.cli import main as cli_main

    data = write_image_dataset(tmp_path / "data", 8)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data, tmp_path / "empty"))
    assert cli_main(["train", str(recipe), "--resume_from_checkpoint", "true"]) == 2
    err = capsys.readouterr().err
    assert "error: resume_from_checkpoint='true': no complete checkpoint" in err and "Traceback" not in err


def test_atomic_checkpoints_keep_rotation_and_best_model(tmp_path):
    """save_total_limit and load_best_model_at_end work on the renamed folders; no staging folder is left."""
    import json

    from hf_mtl.scripts.train import main as train_main

    data = write_image_dataset(tmp_path / "data", 16, seed=1)
    out = tmp_path / "run"
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe(data, out, max_steps=4, save_strategy="steps", save_steps=1, eval_strategy="steps",
                    eval_steps=1, save_total_limit=2, load_best_model_at_end=True, metric_for_best_model="loss",
                    max_eval_samples=4),
    )
    train_main([str(recipe)])
    kept = sorted(p.name for p in out.iterdir() if p.name.startswith(("checkpoint-", "tmp-checkpoint-")))
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    best = Path(state["best_model_checkpoint"])
    assert best.parent == out and best.name in kept and _complete(best)
    assert "checkpoint-4" in kept and len(kept) <= 2 and not any(name.startswith("tmp-") for name in kept)


if __name__ == "__main__":
    _child(sys.argv[1:])
