"""Atomic checkpoints and finding the last complete one, so a crash (even mid-save) never costs more than one interval.

transformers' ``Trainer._save_checkpoint`` writes straight into ``checkpoint-N/`` and ``get_last_checkpoint`` picks the
highest-numbered folder, complete or not: a process killed while saving leaves a ``checkpoint-N`` without
``trainer_state.json`` (or without weights), and resuming with ``resume_from_checkpoint=True`` then fails on it until
someone deletes it by hand. (transformers 4.36 staged checkpoints in ``tmp-checkpoint-N`` and renamed them; renames by
several processes broke multi-node runs and it was reverted.)

[`MultiTaskTrainer`] writes every file of a checkpoint into ``_tmp-checkpoint-N/`` (a name that
``get_last_checkpoint``, checkpoint rotation and the Trainer's Hub uploads all ignore), fsyncs it, and only the saving
process renames it to ``checkpoint-N/``, once every process has written its part. A folder named ``checkpoint-N`` is
therefore complete; ``trainer_state.json`` (written last) is the completeness marker for folders written by other
tools or older versions.
"""

from __future__ import annotations

import logging
import os
import re
import shutil

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

STAGING_PREFIX = f"_tmp-{PREFIX_CHECKPOINT_DIR}"
"""Checkpoints are written under ``_tmp-checkpoint-N`` and renamed when complete. The leading ``_`` keeps a staging
folder out of the Trainer's Hub uploads of ``output_dir`` (they skip ``_*`` and ``checkpoint-*``), which may run in the
background while the next checkpoint is being written."""
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_STAGING_RE = re.compile(rf"^{STAGING_PREFIX}-(\d+)(-replaced)?$")
AUTO_RESUME_VALUES = ("true", "last")
"""``resume_from_checkpoint`` values meaning "the last complete checkpoint in output_dir" (error if there is none)."""
AUTO_RESUME_IF_ANY = "auto"
"""``resume_from_checkpoint: auto``: the last complete checkpoint if there is one, else a fresh start (restartable jobs)."""


def checkpoint_dir(run_dir: str | os.PathLike, step: int) -> str:
    return os.path.join(os.fspath(run_dir), f"{PREFIX_CHECKPOINT_DIR}-{step}")


def staging_dir(run_dir: str | os.PathLike, step: int) -> str:
    """Same name on every process, so all of them write their share (RNG states, shards) into one folder."""
    return os.path.join(os.fspath(run_dir), f"{STAGING_PREFIX}-{step}")


def is_complete_checkpoint(folder: str | os.PathLike) -> bool:
    return os.path.isfile(os.path.join(folder, TRAINER_STATE_NAME))


def staging_folders(output_dir: str | os.PathLike) -> list[str]:
    """Leftover ``_tmp-checkpoint-*`` folders: saves that were interrupted before their rename."""
    if not os.path.isdir(output_dir):
        return []
    return sorted(
        os.path.join(output_dir, name)
        for name in os.listdir(output_dir)
        if _STAGING_RE.match(name) and os.path.isdir(os.path.join(output_dir, name))
    )


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The highest-step ``checkpoint-N`` folder of ``output_dir`` that holds ``trainer_state.json``, else None.

    Folders without it (written by another tool or an older version, or cut by a crash) are skipped with a warning;
    leftover ``_tmp-checkpoint-N`` staging folders are never candidates.
    """
    output_dir = os.fspath(output_dir)
    if not os.path.isdir(output_dir):
        return None
    for folder in staging_folders(output_dir):
        logger.warning("ignoring %s: a checkpoint save was interrupted there (it is not a checkpoint)", folder)
    steps = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT_RE.match(name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps.append((int(match.group(1)), os.path.join(output_dir, name)))
    for _, folder in sorted(steps, reverse=True):
        if is_complete_checkpoint(folder):
            return folder
        logger.warning("skipping %s: it has no %s (an incomplete checkpoint)", folder, TRAINER_STATE_NAME)
    return None


def resolve_resume_checkpoint(value: str | bool | None, output_dir: str | os.PathLike) -> str | None:
    """``resume_from_checkpoint`` as the Trainer needs it: a checkpoint folder or None.

    ``True`` / ``"true"`` / ``"last"``: the last complete checkpoint in ``output_dir`` (ValueError if none);
    ``"auto"``: the same, or None (a fresh start) when there is none; ``False`` / None / ``"false"``: None;
    a path: checked to be a complete checkpoint (the stock Trainer would silently restart at step 0 without
    ``trainer_state.json``).
    """
    if value is None or value is False or (isinstance(value, str) and value.strip().lower() in ("", "false", "none")):
        return None
    word = value.strip().lower() if isinstance(value, str) else None
    if value is True or word in AUTO_RESUME_VALUES or word == AUTO_RESUME_IF_ANY:
        found = last_complete_checkpoint(output_dir)
        if found is None and word == AUTO_RESUME_IF_ANY:
            logger.info("resume_from_checkpoint=auto: no complete checkpoint in %s, starting from scratch", output_dir)
        elif found is None:
            raise ValueError(
                f"resume_from_checkpoint={value!r}: no complete checkpoint (a {PREFIX_CHECKPOINT_DIR}-N folder with "
                f"{TRAINER_STATE_NAME}) in output_dir {os.fspath(output_dir)!r}; give a checkpoint path, or 'auto' to "
                "start from scratch when there is none"
            )
        else:
            logger.info("resuming from the last complete checkpoint %s", found)
        return found
    path = os.fspath(value)
    if os.path.isdir(path) and not is_complete_checkpoint(path):
        raise ValueError(
            f"resume_from_checkpoint={path!r} is not a complete checkpoint: it has no {TRAINER_STATE_NAME} (its save was "
            f"interrupted, or another tool wrote it); resume from an earlier checkpoint or use 'true' to pick the last "
            "complete one"
        )
    return path


def remove_staging(folder: str) -> None:
    """Delete a leftover staging folder, saying so (it holds a save that never completed)."""
    if os.path.isdir(folder):
        logger.warning("removing %s: an interrupted checkpoint save left it (the checkpoints before it are intact)", folder)
        shutil.rmtree(folder, ignore_errors=True)


def _fsync(path: str, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories cannot be opened on Windows: nothing to sync there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str) -> None:
    """Flush every file (and folder entry) under ``folder`` to disk, so the rename never publishes unwritten data."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            _fsync(os.path.join(root, name))
        _fsync(root, directory=True)


def publish_checkpoint(staging: str, final: str) -> str:
    """Rename the complete ``staging`` folder to ``final`` (same file system: atomic), replacing an older ``final``.

    A directory cannot atomically replace a non-empty one, so an existing ``final`` (a re-saved step after a resume)
    is first moved aside: a crash between the two renames leaves the earlier checkpoints, never a partial one.
    """
    if not os.path.isdir(staging) and is_complete_checkpoint(final):
        return final  # another node's saving process published it (save_on_each_node on a shared file system)
    fsync_tree(staging)
    replaced = None
    if os.path.exists(final):
        replaced = f"{staging}-replaced"
        shutil.rmtree(replaced, ignore_errors=True)
        os.replace(final, replaced)
    os.replace(staging, final)
    _fsync(os.path.dirname(os.path.abspath(final)), directory=True)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    return final


def checkpoint_tensor_shapes(folder: str) -> dict[str, tuple[int, ...]] | None:
    """Name → shape of every tensor in a checkpoint's safetensors weights, read from the headers only (no tensor is
    loaded); None when the folder holds no ``model.safetensors`` (e.g. a LoRA adapter checkpoint)."""
    import json

    from safetensors import safe_open

    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.isfile(os.path.join(folder, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for name in files:
        path = os.path.join(folder, name)
        try:
            with safe_open(path, framework="pt") as f:
                shapes.update({key: tuple(f.get_slice(key).get_shape()) for key in f.keys()})
        except Exception as err:  # safetensors raises its own SafetensorError for a corrupt header
            raise ValueError(f"checkpoint weights {path!r} cannot be read ({err}); resume from another checkpoint") from err
    return shapes


def check_resume_compatible(folder: str, model) -> None:
    """Refuse to resume from a checkpoint of another model before anything is loaded into ``model``.

    The stock Trainer loads first: with a renamed task or other head sizes it overwrites part of the in-memory model
    and then fails inside torch, or warns and trains on with a randomly initialised head. Compared: the task list of
    the checkpoint's ``config.json`` (names, types, output sizes) and the shape of every tensor both sides have; the
    error names both sides.
    """
    import json

    from .tasks import TaskSpec

    config_path = os.path.join(folder, "config.json")
    config = getattr(model, "config", None)
    if os.path.isfile(config_path) and getattr(config, "tasks", None) is not None:
        with open(config_path, encoding="utf-8") as f:
            try:
                saved_tasks = json.load(f).get("tasks")
            except (json.JSONDecodeError, AttributeError) as err:  # json's error names no file
                raise ValueError(f"checkpoint config {config_path!r} is not a JSON object ({err}); resume from "
                                 "another checkpoint") from err
        if saved_tasks is not None:
            def summary(tasks):
                specs = [TaskSpec.from_dict(t) for t in tasks]
                return [f"{s.name} ({s.type}, {s.output_size} outputs)" for s in specs]

            theirs, ours = summary(saved_tasks), summary(config.tasks)
            if theirs != ours:
                raise ValueError(
                    f"cannot resume from {folder!r}: it is a checkpoint of another model. The checkpoint has tasks "
                    f"{theirs}; the model being trained has {ours}. Resume with the model that wrote it, or start "
                    "this model from the checkpoint's weights (MultiTaskModel.from_pretrained) without resuming"
                )
    shapes = checkpoint_tensor_shapes(folder)
    if shapes is None:
        return
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    differ = [f"{n}: checkpoint {list(shapes[n])}, model {list(ours[n])}" for n in ours if n in shapes
              and shapes[n] != ours[n]]
    if differ:
        raise ValueError(
            f"cannot resume from {folder!r}: {len(differ)} tensors have other shapes than in the model being trained "
            f"({'; '.join(differ[:5])}); resume with the model that wrote the checkpoint"
        )
