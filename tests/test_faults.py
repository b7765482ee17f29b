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

from tests.multiprocess import TIMEOUT
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
        cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT,
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


@pytest.mark.slow
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
    staged = out / "_tmp-checkpoint-4"
    # The half-written checkpoint stayed in its staging folder: weights there, trainer state never written.
    assert (staged / "model.safetensors").is_file() and not (staged / "trainer_state.json").exists()
    assert not (out / "checkpoint-4").exists() and _complete(out / "checkpoint-2")
    # Both lookups land on the intact checkpoint (the stock one too: the staging name is not a checkpoint name).
    assert last_complete_checkpoint(out) == get_last_checkpoint(str(out)) == str(out / "checkpoint-2")

    resumed = run_cli("train", str(recipe), "--output_dir", str(out), "--resume_from_checkpoint", "true")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    removal = [line for line in resumed.stderr.splitlines() if "removing" in line and "_tmp-checkpoint-4" in line]
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
    _fake_checkpoint(tmp_path / "_tmp-checkpoint-30", complete=False)
    (tmp_path / "checkpoint-40").write_text("a file, not a folder")
    with caplog.at_level(logging.WARNING, logger="hf_mtl.checkpointing"):
        assert last_complete_checkpoint(tmp_path) == str(good)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint-20" in messages and "trainer_state.json" in messages and "_tmp-checkpoint-30" in messages
    assert resolve_resume_checkpoint(True, tmp_path) == str(good) == resolve_resume_checkpoint("auto", tmp_path)
    with pytest.raises(ValueError, match="checkpoint-20.* not a complete checkpoint"):
        resolve_resume_checkpoint(str(cut), tmp_path)


def test_publish_replaces_an_older_checkpoint_of_the_same_step(tmp_path):
    """A step saved again after resuming from an earlier checkpoint: the new folder replaces the old, nothing is left."""
    from hf_mtl.checkpointing import last_complete_checkpoint, publish_checkpoint, staging_dir

    old = _fake_checkpoint(tmp_path / "checkpoint-4", complete=True)
    (old / "stale.txt").write_text("from the first run")
    staging = _fake_checkpoint(Path(staging_dir(tmp_path, 4)), complete=True)
    assert publish_checkpoint(str(staging), str(old)) == str(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-4"]
    assert not (old / "stale.txt").exists() and last_complete_checkpoint(tmp_path) == str(old)


def test_cli_resume_true_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    from hf_mtl.cli import main as cli_main

    data = write_image_dataset(tmp_path / "data", 8)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data, tmp_path / "empty"))
    assert cli_main(["train", str(recipe), "--resume_from_checkpoint", "true"]) == 2
    err = capsys.readouterr().err
    assert "error: resume_from_checkpoint='true': no complete checkpoint" in err and "Traceback" not in err
    # the same from a YAML `resume_from_checkpoint: true` (a bool there)
    recipe = write_recipe(tmp_path / "r2.yaml", tiny_recipe(data, tmp_path / "empty", resume_from_checkpoint=True))
    assert cli_main(["train", str(recipe)]) == 2
    assert "error: resume_from_checkpoint='true': no complete checkpoint" in capsys.readouterr().err


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
    kept = sorted(p.name for p in out.iterdir() if p.name.startswith(("checkpoint-", "_tmp-checkpoint-")))
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    best = Path(state["best_model_checkpoint"])
    assert best.parent == out and best.name in kept and _complete(best)
    assert "checkpoint-4" in kept and len(kept) <= 2 and not any(name.startswith("_tmp-") for name in kept)


# -------------------------------------------------------------------------------------------------------- push faults
EXPECTED_FILES = {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"}


@pytest.fixture
def model(monkeypatch, tmp_path):
    """A tiny image model; a failed push keeps its staged files under this test's tmp_path."""
    import tempfile

    import hf_mtl
    from tests.tiny_models import IMAGE_SIZE, timm_model

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = timm_model()
    model.set_processor(hf_mtl.build_processor(model, image_size=IMAGE_SIZE))
    return model


def _assert_kept(err, token: str) -> None:
    """The staged files survive the failure, complete, and the message names them and never the token."""
    from safetensors.torch import load_file

    folder = Path(err.folder)
    assert EXPECTED_FILES <= {p.name for p in folder.iterdir()} and EXPECTED_FILES <= set(err.files)
    assert load_file(str(folder / "model.safetensors"))  # intact weights
    text = str(err)
    assert str(folder) in text and "hf upload" in text and "push_to_hub again" in text
    assert token not in text and token not in repr(err.__cause__) and token not in str(err.__cause__)


def _retry_command(err) -> list[str]:
    import shlex

    line = next(line for line in str(err).splitlines() if "hf upload " in line)
    return shlex.split(line[line.index("hf upload "):])


def test_push_with_the_hub_down_keeps_the_files_and_a_retry_succeeds(local_hub, model):
    from hf_mtl.hub import PushToHubError

    repo_id = local_hub.repo_id("down")
    local_hub.server.stop()
    with pytest.raises(PushToHubError) as info:
        model.push_to_hub(repo_id)
    err = info.value
    assert not err.repo_ready and err.committed is False and err.branch_ready is None
    assert "failed at step 'create the repo'" in str(err) and f"repo {repo_id}: not created" in str(err)
    assert "none of the" in str(err)
    _assert_kept(err, local_hub.token)

    local_hub.server.start()
    assert not local_hub.server.repo_exists(repo_id)
    model.push_to_hub(repo_id)  # retrying the push itself
    assert EXPECTED_FILES <= set(local_hub.server.list_files(repo_id))
    # ... or uploading the kept folder exactly as the message says (huggingface_hub's own `hf upload`).
    command = _retry_command(err)
    uploaded = subprocess.run([str(Path(sys.executable).with_name("hf")), *command[1:]], capture_output=True,
                              text=True, timeout=TIMEOUT, env={**os.environ, "HF_HUB_DISABLE_UPDATE_CHECK": "1"})
    assert uploaded.returncode == 0, uploaded.stderr[-3000:]
    assert local_hub.token not in uploaded.stdout + uploaded.stderr


def test_push_http_500_on_the_commit_after_preupload_pushes_nothing_and_a_retry_succeeds(local_hub, model):
    from hf_mtl.hub import PushToHubError

    repo_id, hub = local_hub.repo_id("commit-500"), local_hub.server
    fault = hub.fail_next("/commit/", 500, count=None)  # huggingface_hub does not retry a commit; robust if it did
    with pytest.raises(PushToHubError) as info:
        model.push_to_hub(repo_id, revision="dev")
    err = info.value
    assert fault.hits >= 1 and err.repo_ready and err.branch_ready and err.committed is False
    assert any("/preupload/" in r.path and r.status == 200 for r in hub.requests)  # the upload was under way
    text = str(err)
    assert "failed at step 'commit'" in text and "500" in text and "branch 'dev': exists" in text
    assert f"repo {repo_id}: exists" in text and "none of the" in text and "--revision dev" in text
    _assert_kept(err, local_hub.token)
    assert hub.list_files(repo_id, revision="dev") == [".gitattributes"]  # the commit is all-or-nothing

    hub.clear_faults()
    model.push_to_hub(repo_id, revision="dev")
    assert EXPECTED_FILES <= set(hub.list_files(repo_id, revision="dev"))


def test_transient_500_on_preupload_is_retried_by_huggingface_hub(local_hub, model):
    repo_id = local_hub.repo_id("preupload-500")
    fault = local_hub.server.fail_next("/preupload/", 500, count=1)
    model.push_to_hub(repo_id)
    assert fault.hits == 1 and EXPECTED_FILES <= set(local_hub.server.list_files(repo_id))


def test_push_commit_timeout_says_the_commit_state_is_unknown(local_hub, model):
    """huggingface_hub's HTTP client has no timeout by default (``timeout=None``) and ``create_commit`` takes none: a
    bound comes from ``huggingface_hub.set_client_factory`` (here 1 s)."""
    import time

    import httpx2
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import default_client_factory

    from hf_mtl.hub import PushToHubError

    def short_timeout_client():
        client = default_client_factory()
        client.timeout = httpx2.Timeout(1.0)
        return client

    repo_id, hub = local_hub.repo_id("slow-commit"), local_hub.server
    hub.fail_next("/commit/", status=None, delay=3.0)  # answers normally, too late
    set_client_factory(short_timeout_client)
    try:
        with pytest.raises(PushToHubError) as info:
            model.push_to_hub(repo_id)
    finally:
        set_client_factory(default_client_factory)
    err = info.value
    assert err.repo_ready and err.committed is None and "commit: UNKNOWN" in str(err)
    assert "list_repo_commits" in str(err) and "Timeout" in str(err)
    _assert_kept(err, local_hub.token)
    deadline = time.monotonic() + 10  # the slow commit does land: "unknown" was the honest answer
    while "model.safetensors" not in hub.list_files(repo_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    model.push_to_hub(repo_id)  # the retry is harmless either way
    assert EXPECTED_FILES <= set(hub.list_files(repo_id))


def test_trainer_push_failure_names_output_dir_and_a_retry_succeeds(local_hub, model, tmp_path):
    from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
    from hf_mtl.hub import PushToHubError
    from tests.tiny_models import synthetic_rows

    repo_id, out = local_hub.repo_id("trainer-commit-500"), tmp_path / "run"
    args = MultiTaskTrainingArguments(output_dir=str(out), max_steps=1, per_device_train_batch_size=4, report_to=[],
                                      save_strategy="steps", save_steps=1, use_cpu=True, disable_tqdm=True,
                                      hub_model_id=repo_id)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=synthetic_rows(4, seed=2))
    trainer.train()
    local_hub.server.fail_next("/commit/", 500, count=None)
    with pytest.raises(PushToHubError) as info:
        trainer.push_to_hub()
    err = info.value
    assert err.folder == str(out) and err.repo_ready and err.committed is False
    assert EXPECTED_FILES <= set(err.files) and not [f for f in err.files if f.startswith("checkpoint-")]
    assert "trainer.push_to_hub() again" in str(err) and "--exclude 'checkpoint-*'" in str(err)
    assert local_hub.token not in str(err) and (out / "model.safetensors").is_file()

    local_hub.server.clear_faults()
    trainer.push_to_hub()
    assert EXPECTED_FILES <= set(local_hub.server.list_files(repo_id))


def test_cli_push_failure_is_a_clear_message_with_exit_1(local_hub, model, tmp_path, capsys):
    from hf_mtl.cli import main as cli_main
    from hf_mtl.hub import save_for_hub

    folder = save_for_hub(model, tmp_path / "saved")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    repo_id = local_hub.repo_id("cli-push")
    local_hub.server.stop()
    assert cli_main(["push", str(folder), repo_id]) == 1
    err = capsys.readouterr().err
    assert "error: push to " + repo_id in err and "not created" in err and "Traceback" not in err
    assert f"hf-mtl push {folder} {repo_id}" in err and local_hub.token not in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the model folder is untouched

    local_hub.server.start()
    assert cli_main(["push", str(folder), repo_id]) == 0
    assert EXPECTED_FILES <= set(local_hub.server.list_files(repo_id))


if __name__ == "__main__":
    _child(sys.argv[1:])


def test_failed_background_push_while_training_is_logged_and_the_final_push_sends_everything(
    local_hub, model, tmp_path, caplog
):
    """The Trainer pushes each checkpoint in the background; transformers never reads those futures' errors. A failed
    one is logged (without the token), training goes on, and the end-of-training push uploads everything."""
    from hf_mtl import MultiTaskTrainer, MultiTaskTrainingArguments
    from tests.tiny_models import synthetic_rows

    repo_id, out = local_hub.repo_id("background-push-500"), tmp_path / "run"
    args = MultiTaskTrainingArguments(output_dir=str(out), max_steps=2, per_device_train_batch_size=4, report_to=[],
                                      save_strategy="steps", save_steps=1, use_cpu=True, disable_tqdm=True,
                                      push_to_hub=True, hub_model_id=repo_id, hub_always_push=True)
    trainer = MultiTaskTrainer(model=model, args=args, train_dataset=synthetic_rows(8, seed=2))
    fault = local_hub.server.fail_next("/commit/", 500, count=1)  # the first checkpoint's push
    with caplog.at_level(logging.WARNING, logger="hf_mtl.hub"):
        trainer.train()
        trainer.push_to_hub()
    assert fault.hits == 1 and trainer.state.global_step == 2
    failed = [r.getMessage() for r in caplog.records if "background push" in r.getMessage()]
    assert len(failed) == 1 and repo_id in failed[0] and "step 1" in failed[0], failed
    assert all(local_hub.token not in r.getMessage() for r in caplog.records)
    assert EXPECTED_FILES <= set(local_hub.server.list_files(repo_id))
    assert "training_args.json" in local_hub.server.list_files(repo_id)
