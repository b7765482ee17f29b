"""`report_to: tensorboard` / `trackio` record per-task losses and the balancer's task weights (read back from the
event files and trackio's local store; offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.recipe_helpers import run_cli, tiny_recipe, write_image_dataset, write_recipe

pytest.importorskip("tensorboard")
pytest.importorskip("trackio")
TASKS = ("tags", "kind", "score", "flag")


def _tensorboard_scalars(folder) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, dict[int, float]] = {}
    for run in folder.glob("runs/*"):
        events = EventAccumulator(str(run))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, {}).update({e.step: e.value for e in events.Scalars(tag)})
    return scalars


def _trackio_logs(store, project: str, run: str) -> list[dict]:
    """trackio reads TRACKIO_DIR when imported: read its store in a process that sets it."""
    code = ("import json, sys; from trackio.sqlite_storage import SQLiteStorage; "
            "print(json.dumps(SQLiteStorage.get_logs(sys.argv[1], sys.argv[2])))")
    result = subprocess.run([sys.executable, "-c", code, project, run], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TRACKIO_DIR": str(store)})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # fresh interpreters (CLI / app server)
def test_tensorboard_and_trackio_record_task_losses_and_weights(tmp_path):
    data = write_image_dataset(tmp_path / "data", 24)
    recipe = tiny_recipe(data, tmp_path / "out", max_steps=4, logging_steps=1, report_to=["tensorboard", "trackio"],
                         task_balancing="uncertainty", project="hf-mtl-test", run_name="tiny")
    result = run_cli("train", str(write_recipe(tmp_path / "r.yaml", recipe)),
                     env={"TRACKIO_DIR": str(tmp_path / "trackio"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]

    board = _tensorboard_scalars(tmp_path / "out")
    for task in TASKS:
        assert set(board[f"train/task_weight_{task}"]) == {1, 2, 3, 4}, task
        assert board[f"train/loss_{task}"] and all(v > 0 for v in board[f"train/loss_{task}"].values()), task
    weights = [board[f"train/task_weight_{task}"][4] for task in TASKS]
    assert len(set(weights)) > 1, "uncertainty weighting moved the weights apart"

    logs = [row for row in _trackio_logs(tmp_path / "trackio", "hf-mtl-test", "tiny") if "train/loss" in row]
    assert [row["train/global_step"] for row in logs] == [1, 2, 3, 4]
    for row in logs:  # the same numbers as in the event files (tensorboard stores float32)
        step = row["train/global_step"]
        for key in [k for k in row if k.startswith(("train/loss_", "train/task_weight_"))]:
            assert row[key] == pytest.approx(board[key][step], rel=1e-6), (key, step)
    assert {f"train/task_weight_{t}" for t in TASKS} <= set(logs[-1])
    assert sum(key.startswith("train/loss_") for key in set().union(*logs)) == len(TASKS)
