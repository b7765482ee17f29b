"""Streaming recipes (`streaming: true`): Parquet shards read as a `datasets.IterableDataset`, each process its own
shards, the first rows checked before step 1 naming file and row, and a resumed run on the rows of the uninterrupted
one; 2 processes (a real `accelerate launch`) train the weights of 1 process with twice the batch."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from hf_mtl.data import ROW_ID_COLUMN, TrainingStream, split_stream, stream_files
from hf_mtl.data.streaming import shuffle_stream
from hf_mtl.scripts import RecipeError
from hf_mtl.scripts.train import main as train_main
from tests.multiprocess import accelerate_launch, requires_accelerate
from tests.recipe_helpers import load_weights, tiny_recipe, write_image_dataset, write_recipe
from tests.test_resume import StopAfterCheckpoint


def write_parquet_shards(folder: Path, n: int, shards: int, seed: int = 0, missing: float = 0.3) -> Path:
    """The rows of ``write_image_dataset`` (PNG files, paths relative to the shards) in ``shards`` Parquet files."""
    data = write_image_dataset(folder, n, seed=seed, missing=missing)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    (folder / "shards").mkdir(exist_ok=True)
    for s in range(shards):
        part = rows[s::shards]
        for row in part:
            row["image"] = "../" + row["image"]  # relative to the shard's folder
        pq.write_table(pa.Table.from_pylist(part), folder / "shards" / f"part-{s:03d}.parquet")
    return folder / "shards"


def test_stream_reads_shards_round_robin_and_names_rows(tmp_path):
    folder = write_parquet_shards(tmp_path / "d", 10, shards=2)
    stream = stream_files(sorted(folder.glob("*.parquet")), "parquet", path_columns=["image"])
    assert stream.num_shards == 2
    rows = list(split_stream(stream))
    assert [r[ROW_ID_COLUMN] for r in rows[:4]] == ["part-000.parquet row 0", "part-001.parquet row 0",
                                                     "part-000.parquet row 1", "part-001.parquet row 1"]
    assert all(Path(r["image"]).is_file() for r in rows)  # relative paths resolved against the shard's folder


# 4 shards: each process reads its own 2; 3: both read all, keep 1 row in 2; 8 shards 4 open at a time: two groups
@pytest.mark.parametrize(("shards", "open_shards"), [(4, 16), (3, 16), (8, 4)])
def test_two_shares_per_step_equal_one_stream_with_twice_the_batch(tmp_path, shards, open_shards):
    folder = write_parquet_shards(tmp_path / "d", 4 * shards, shards=shards)
    stream = stream_files(sorted(folder.glob("*.parquet")), "parquet")
    whole = [r[ROW_ID_COLUMN] for r in split_stream(stream, open_shards=open_shards)]
    shares = [[r[ROW_ID_COLUMN] for r in split_stream(stream, rank, 2, open_shards)] for rank in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted(whole) and not set(shares[0]) & set(shares[1])
    if shards == 4:
        files = [{r.split()[0] for r in share} for share in shares]
        assert len(files[0]) == len(files[1]) == 2 and not files[0] & files[1]  # its own shards only
    if open_shards < shards:  # the first group's shards are read before the next group's open
        assert {r.split()[0] for r in whole[:16]} == {f"part-{i:03d}.parquet" for i in range(4)}
    b = 2  # per-process batch (a multiple of the shards per process)
    for step in range(len(whole) // (2 * b)):
        assert set(whole[2 * b * step: 2 * b * (step + 1)]) == set(
            shares[0][b * step: b * (step + 1)] + shares[1][b * step: b * (step + 1)])


def test_shuffled_stream_reads_one_group_of_shards_at_a_time(tmp_path):
    """datasets' shuffle would interleave up to 10 of the share's round-robin groups (every shard open at once, memory
    growing with the number of shards); shuffle_stream keeps one group open, and a pass still yields every row once."""
    folder = tmp_path / "d"
    folder.mkdir()
    for s in range(32):
        pq.write_table(pa.table({"x": [100 * s + i for i in range(8)]}), folder / f"part-{s:03d}.parquet")
    share = split_stream(stream_files(sorted(folder.glob("*.parquet")), "parquet"), open_shards=4)
    shuffled = shuffle_stream(share, seed=0, buffer_size=16)
    rows = [r[ROW_ID_COLUMN] for r in shuffled]
    assert sorted(rows) == sorted(r[ROW_ID_COLUMN] for r in share) and len(rows) == 256
    assert len({r.split()[0] for r in rows[:8]}) <= 4  # the first half-buffer: rows of the first group's 4 shards
    assert rows == [r[ROW_ID_COLUMN] for r in shuffle_stream(share, seed=0, buffer_size=16)]  # same seed, same order
    assert rows != [r[ROW_ID_COLUMN] for r in shuffle_stream(share, seed=1, buffer_size=16)]


def test_parquet_shard_of_one_large_row_group_is_read_in_bounded_memory(tmp_path):
    """pyarrow writes one row group of up to 1Mi rows by default; reading a row group whole would hold the whole file:
    the Arrow memory of reading a shard 4x as large stays the same."""
    import numpy as np

    rng = np.random.default_rng(0)
    peaks = []
    for rows in (1024, 4096):  # 4 MiB, 16 MiB
        path = tmp_path / f"big{rows}.parquet"
        pq.write_table(pa.table({"blob": [rng.bytes(4096) for _ in range(rows)]}), path)
        assert pq.ParquetFile(path).metadata.num_row_groups == 1
        start, peak, n = pa.total_allocated_bytes(), 0, 0
        for _ in stream_files([path], "parquet"):
            peak, n = max(peak, pa.total_allocated_bytes() - start), n + 1
        assert n == rows
        peaks.append(peak)
    assert peaks[1] < 1.25 * peaks[0], peaks


def test_first_rows_checked_naming_file_and_row(tmp_path):
    folder = write_parquet_shards(tmp_path / "d", 8, shards=2)
    table = pq.read_table(folder / "part-001.parquet").to_pylist()
    table[2]["kind"] = "no-such-class"
    pq.write_table(pa.Table.from_pylist(table), folder / "part-001.parquet")
    recipe = tiny_recipe(folder, tmp_path / "out", dataset="parquet", streaming=True, shuffle_buffer_size=0,
                         validate_stream_rows=8)
    with pytest.raises(ValueError, match=r"column 'kind', part-001.parquet row 2"):
        _run(recipe)


def test_regression_targets_standardised_from_the_rows_validated_before_step_1(tmp_path, caplog):
    folder = write_parquet_shards(tmp_path / "d", 24, shards=2)
    recipe = tiny_recipe(folder, tmp_path / "out", dataset="parquet", streaming=True, shuffle_buffer_size=0,
                         validate_stream_rows=10, max_steps=1)
    with caplog.at_level("INFO", logger="hf_mtl.trainer"):
        _run(recipe)
    first = [r["score"] for r in split_stream(stream_files(sorted(folder.glob("*.parquet")), "parquet"))][:10]
    present = torch.tensor([v for v in first if v is not None], dtype=torch.float64)
    assert 2 <= len(present) < 10  # some of the first rows lack the target
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    score = next(t for t in config["tasks"] if t["name"] == "score")
    assert score["target_mean"] == pytest.approx([float(present.mean())], abs=1e-9)
    assert score["target_std"] == pytest.approx([float(present.std(unbiased=False))], abs=1e-9)
    assert "['score'] estimated from 10 rows" in caplog.text


def _run(recipe, *overrides: str, callbacks=None):
    from hf_mtl.scripts.arguments import parse_recipe
    from hf_mtl.scripts.train import run

    args = parse_recipe(recipe, list(overrides))
    return run(*args, callbacks=callbacks)


def test_streaming_needs_max_steps_and_a_stream_loader(tmp_path):
    folder = write_parquet_shards(tmp_path / "d", 8, shards=2)
    with pytest.raises(RecipeError, match="max_steps"):
        _run(tiny_recipe(folder, tmp_path / "o", dataset="parquet", streaming=True, max_steps=-1))
    with pytest.raises(RecipeError, match="streaming: true` reads parquet"):
        _run(tiny_recipe(folder, tmp_path / "o", dataset="csv", streaming=True))


def test_stream_replays_its_rows_on_resume(tmp_path):
    folder = write_parquet_shards(tmp_path / "d", 12, shards=3)
    raw = stream_files(sorted(folder.glob("*.parquet")), "parquet").shuffle(seed=3, buffer_size=4)
    first = TrainingStream(raw)
    rows = [r[ROW_ID_COLUMN] for r, _ in zip(first, range(30))]  # two and a half passes, each reshuffled
    assert rows[:12] != rows[12:24] and sorted(rows[:12]) == sorted(rows[12:24])
    resumed = TrainingStream(raw)
    resumed.resume_rows = 17
    assert [r[ROW_ID_COLUMN] for r, _ in zip(resumed, range(13))] == rows[17:]


@pytest.mark.slow
def test_resume_mid_stream_equals_uninterrupted(tmp_path):
    folder = write_parquet_shards(tmp_path / "d", 24, shards=3)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        folder, tmp_path / "unused", dataset="parquet", streaming=True, shuffle_buffer_size=5, max_steps=8,
        save_strategy="steps", save_steps=3, max_eval_samples=4))  # 8 steps x 4 rows: past one pass of 20 rows
    full, cut = tmp_path / "full", tmp_path / "cut"
    train_main([str(recipe), "--output_dir", str(full)])
    assert train_main([str(recipe), "--output_dir", str(cut)], callbacks=[StopAfterCheckpoint(3)]) == {}
    interrupted = load_weights(cut / "checkpoint-3")
    train_main([str(recipe), "--output_dir", str(cut), "--resume_from_checkpoint", str(cut / "checkpoint-3")])
    expected, resumed = load_weights(full), load_weights(cut)
    assert any(not torch.equal(interrupted[k], resumed[k]) for k in resumed)
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")


@requires_accelerate
@pytest.mark.slow
def test_two_processes_stream_equal_one_process_with_twice_the_batch(tmp_path):
    folder = write_parquet_shards(tmp_path / "d", 40, shards=4, missing=0.4)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(
        folder, tmp_path / "unused", dataset="parquet", streaming=True, shuffle_buffer_size=0, max_steps=4,
        validation_file=str(folder / "part-000.parquet"), max_eval_samples=4,
        optim="sgd", learning_rate=0.1))  # (Adam divides by sqrt(v): float reduction-order noise of near-zero
    # gradients would grow to ~1e-6; plain SGD keeps 1e-6 a test of the rows each step trains on)

    def launch(processes: int, batch: int, out: str):
        return accelerate_launch(["-m", "hf_mtl.cli", "train", str(recipe), "--output_dir", str(tmp_path / out),
                                  "--per_device_train_batch_size", str(batch)], tmp_path,
                                 num_processes=processes).check()

    two = launch(2, 2, "two")
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in two.stderr
    launch(1, 4, "one")
    w2, w1 = load_weights(tmp_path / "two"), load_weights(tmp_path / "one")
    assert any(k.startswith("heads.") for k in w1)
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=0, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")


@pytest.mark.slow
def test_heads_only_stage_trains_on_a_cached_pass_of_the_stream(tmp_path):
    folder = write_parquet_shards(tmp_path / "d", 16, shards=2)
    cache = tmp_path / "cache"
    metrics = _run(tiny_recipe(folder, tmp_path / "out", dataset="parquet", streaming=True, max_steps=2,
                               heads_only_epochs=1, feature_cache_dir=str(cache), max_eval_samples=4,
                               final_model="last"))
    assert "eval_loss" in metrics
    parts = [p for folder_ in cache.glob("features-*") for p in folder_.glob("part-*.arrow")]
    assert len(parts) == 2  # the train stream's pass and the eval set, each cached once (one part: one process)
