"""Tiny on-disk data and recipes for the recipe / CLI / distributed / resume tests (real files, tiny models)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from tests.multiprocess import TIMEOUT
from tests.tiny_models import MIXED_TASKS, synthetic_rows

REPO = Path(__file__).resolve().parents[1]
TINY_BACKBONE = "test_efficientnet_gn"  # GroupNorm: no batch statistics, so 2 processes x b equals 1 process x 2b


def write_image_dataset(folder: Path, n: int, seed: int = 0, missing: float = 0.3) -> Path:
    """``n`` 16x16 PNGs whose colours decide their labels, and a JSON-lines file naming them (relative paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    lines = []
    for i, row in enumerate(synthetic_rows(n, seed=seed, missing=missing)):
        pixels = row.pop("pixel_values")[:, :16, :16].permute(1, 2, 0).numpy()
        Image.fromarray(np.clip((pixels + 1.5) * 85, 0, 255).astype(np.uint8)).save(folder / "images" / f"{i}.png")
        row["kind"] = None if row["kind"] is None else ["x", "y", "z"][row["kind"]]
        lines.append(json.dumps({"image": f"images/{i}.png", **row}))
    path = folder / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_recipe(data_file: Path, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    recipe = {
        "backbone": TINY_BACKBONE,
        "weights": "none",
        "image_size": 32,
        "tasks": MIXED_TASKS,
        "dataset": "json",
        "train_file": str(data_file),
        "input_column": "image",
        "validation_split": 0.25,
        "augment": False,
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": 0.01,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": 0,
        "output_dir": str(output_dir),
        "dataloader_pin_memory": False,
    }
    recipe.update(overrides)
    return recipe


def write_recipe(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_cli(*args: str, timeout: int = TIMEOUT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m hf_mtl.cli ...`` in a fresh process, offline, on one CPU thread."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hf_mtl.cli", *args], cwd=REPO, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )


def load_weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))
