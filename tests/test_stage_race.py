"""The heads-only stage under a real 2-process launch, with the interleaving that once failed forced in both orders
(tests/stage_race_driver.py slows one rank at each of its steps on the stage's folder): only the main process
touches the folder, the other waits at the barrier, and both finish."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.multiprocess import accelerate_launch, launch_env, requires_accelerate
from tests.recipe_helpers import tiny_recipe, write_image_dataset, write_recipe

pytestmark = [pytest.mark.slow, requires_accelerate]


@pytest.mark.parametrize("slow_rank", [0, 1], ids=["main-rank-late", "other-rank-late"])
def test_heads_only_stage_folder_under_forced_interleaving(tmp_path: Path, slow_rank: int) -> None:
    data = write_image_dataset(tmp_path / "data", 16, seed=1)
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(data, out, max_steps=1, heads_only_epochs=1,
                                                           max_eval_samples=4, final_model="last"))
    logs = tmp_path / "fs-log"
    logs.mkdir()
    env = launch_env(tmp_path, HF_MTL_TEST_SLOW_RANK=str(slow_rank), HF_MTL_TEST_FS_LOG=str(logs))
    accelerate_launch(["-m", "tests.stage_race_driver", str(recipe), "--output_dir", str(out)], tmp_path,
                      env=env).check()
    calls = [json.loads(line) for path in sorted(logs.glob("rank*.jsonl")) for line in path.read_text().splitlines()]
    removals = [c for c in calls if c["op"] in ("rmdir", "rmtree")]
    assert removals and {c["rank"] for c in removals} == {0}, calls  # the main process alone removes the folder
    assert not (out / "heads_only").exists()
    assert (out / "model.safetensors").is_file()
