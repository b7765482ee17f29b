"""An ``imagefolder`` laid out as ``recipes/own_data_template.yaml`` describes it (train/, validation/, test/, each with
a ``metadata.jsonl`` of label columns), and the template's overrides that train it on a tiny backbone in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.recipe_helpers import REPO, TINY_BACKBONE

TEMPLATE = REPO / "recipes" / "own_data_template.yaml"
TAGS = ["outdoor", "indoor", "dog", "cat", "person"]
SCENES = ["park", "beach", "street", "home"]


def template_rows(n: int, seed: int, missing: float = 0.2) -> list[tuple[np.ndarray, dict]]:
    """``(16x16 RGB image, labels)``: every label is a function of the image's mean colour (learnable), some null."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        means = rng.uniform(-1, 1, 3)
        pixels = np.clip((means[None, None, :] + 0.3 * rng.normal(size=(16, 16, 3)) + 1.5) * 85, 0, 255)
        labels = {
            "tags": [name for name, on in zip(TAGS, (means[0] > 0, means[0] <= 0, means[1] > 0, means[2] > 0,
                                                     means[0] + means[1] > 0)) if on],
            "scene": SCENES[int(means[0] > 0) * 2 + int(means[1] > 0)],
            "defect": bool(means[2] > 0.3),
            "quality": float(means.sum()),
        }
        for key in labels:
            if rng.random() < missing:
                labels[key] = None  # missing, never negative
        rows.append((pixels.astype(np.uint8), labels))
    return rows


def write_template_imagefolder(root: Path, sizes: dict[str, int] | None = None) -> Path:
    """``root/{train,validation,test}/`` with PNGs and a ``metadata.jsonl`` each (``file_name`` + label columns)."""
    sizes = sizes or {"train": 24, "validation": 10, "test": 12}
    for i, (split, n) in enumerate(sizes.items()):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for j, (pixels, labels) in enumerate(template_rows(n, seed=100 + i)):
            Image.fromarray(pixels).save(folder / f"{j:04d}.png")
            lines.append(json.dumps({"file_name": f"{j:04d}.png", **labels}))
        (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def template_overrides(data_dir: Path, output_dir: Path, **extra: object) -> dict[str, object]:
    """Values that keep the template's data and tasks but train a tiny random backbone briefly."""
    values = {
        "backbone": TINY_BACKBONE, "weights": "none", "image_size": 32, "data_dir": str(data_dir),
        "output_dir": str(output_dir), "heads_only_epochs": 0, "freeze_policy": "full", "max_steps": 3,
        "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8, "learning_rate": 0.01, "augment": False,
        "eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False, "logging_steps": 1,
        "seed": 0, "dataloader_pin_memory": False,
    }
    values.update(extra)
    return values


def user_recipe(path: Path, data_dir: Path, output_dir: Path, **extra: object) -> Path:
    """The template as a user copies it: its keys, pointed at ``data_dir``, with the tiny-backbone overrides."""
    import yaml

    values = {**yaml.safe_load(TEMPLATE.read_text()), **template_overrides(data_dir, output_dir, **extra)}
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def run_main(*argv: str) -> tuple[int, str]:
    """``hf-mtl <argv>`` in this process (``hf_mtl.cli.main``): exit code and what it printed."""
    import contextlib
    import io

    from hf_mtl.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="session")
def template_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """``hf-mtl train`` on the template's imagefolder (tiny backbone, `tune_thresholds: f1` from the template); then the
    training split is made unreadable, so whatever evaluates afterwards provably never reads it."""
    root = tmp_path_factory.mktemp("template")
    data = write_template_imagefolder(root / "data")
    recipe = user_recipe(root / "my_recipe.yaml", data, root / "model", max_eval_samples=5)
    code, out = run_main("train", str(recipe))
    assert code == 0, out[-3000:]
    (data / "train" / "metadata.jsonl").write_text("this is not JSON\n")
    for image in (data / "train").glob("*.png"):
        image.unlink()
    return {"root": root, "data": data, "recipe": recipe, "model": root / "model", "train_output": out}
