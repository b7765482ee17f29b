"""Streaming a Hub data set (`dataset: <owner>/<name>` with `streaming: true`) from the loopback Hub: its Parquet shards
are read with HTTP range requests as training goes (``HfFileSystem``; nothing downloaded first), each process reads its
own files, and a run trains on the rows, and to the weights, of the same shards streamed from a local folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hf_mtl.data import ROW_ID_COLUMN, split_stream, stream_files
from hf_mtl.data.hub_stream import is_hub_dataset_id, stream_hub_dataset
from hf_mtl.scripts import RecipeError
from hf_mtl.scripts.train import main as train_main
from tests.recipe_helpers import load_weights, tiny_recipe, write_image_dataset, write_recipe


def write_hub_shards(folder: Path, n: int, shards: int, seed: int = 0) -> Path:
    """``folder/data/train-0000i-of-0000N.parquet``, the Hub's shard names: the rows of ``write_image_dataset`` with
    the images embedded as bytes (a ``datasets.Image`` column, as ``Dataset.to_parquet`` writes it), as on the Hub."""
    import datasets

    data = write_image_dataset(folder / "raw", n, seed=seed, missing=0.4)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    for row in rows:
        row["image"] = {"bytes": (data.parent / row["image"]).read_bytes(), "path": Path(row["image"]).name}
    table = datasets.Dataset.from_list(rows).cast_column("image", datasets.Image())
    (folder / "repo" / "data").mkdir(parents=True)
    for s in range(shards):
        table.shard(num_shards=shards, index=s, contiguous=True).to_parquet(
            str(folder / "repo" / "data" / f"train-{s:05d}-of-{shards:05d}.parquet"))
    return folder / "repo"


def _upload(local_hub, folder: Path, name: str = "product-shots") -> str:
    repo_id = local_hub.repo_id(name)
    api = local_hub.api()
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset")
    return repo_id


def _reads(local_hub) -> list[str]:
    """The data files the Hub served (range requests of its resolve URLs), in order."""
    return [r.path.rsplit("/", 1)[-1] for r in local_hub.server.requests
            if r.method == "GET" and "/resolve/" in r.path and r.path.endswith(".parquet")]


def test_hub_stream_has_the_local_rows_each_process_reading_its_own_files(local_hub, tmp_path):
    repo = write_hub_shards(tmp_path, 16, shards=4)
    repo_id = _upload(local_hub, repo)
    assert is_hub_dataset_id(repo_id) and not is_hub_dataset_id(str(repo)) and not is_hub_dataset_id("parquet")
    stream, files = stream_hub_dataset(repo_id)
    commit = local_hub.server.commits(repo_id, repo_type="dataset")[0]
    assert stream.num_shards == 4 and files == [
        f"hf://datasets/{repo_id}@{commit}/data/train-{s:05d}-of-00004.parquet" for s in range(4)]
    local = stream_files(sorted((repo / "data").glob("*.parquet")), "parquet")
    assert list(split_stream(stream)) == list(split_stream(local))  # rows, images (bytes) and their names
    assert all(isinstance(row["image"]["bytes"], bytes) for row in split_stream(stream))
    for rank in range(2):
        local_hub.server.requests.clear()
        names = {row[ROW_ID_COLUMN].split()[0] for row in split_stream(stream, rank, 2)}
        own = {f"train-{s:05d}-of-00004.parquet" for s in (rank, rank + 2)}  # shards rank, rank + W
        assert names == own and set(_reads(local_hub)) == own  # it fetched its own files, not the others'
    statuses = {r.status for r in local_hub.server.requests if "/resolve/" in r.path and r.method == "GET"}
    assert statuses == {206}  # range requests: the files are read in parts, never downloaded whole first


@pytest.mark.slow
def test_training_from_the_hub_equals_training_from_the_local_shards(local_hub, tmp_path):
    repo = write_hub_shards(tmp_path, 24, shards=2)
    repo_id = _upload(local_hub, repo)
    common = {"streaming": True, "shuffle_buffer_size": 5, "max_steps": 4, "max_eval_samples": 4, "train_file": None}
    hub_recipe = write_recipe(tmp_path / "hub.yaml", tiny_recipe(None, tmp_path / "hub", dataset=repo_id, **common))
    local_recipe = write_recipe(tmp_path / "local.yaml", tiny_recipe(
        None, tmp_path / "local", **{**common, "dataset": "parquet", "train_file": str(repo / "data")}))
    local_hub.server.requests.clear()
    hub_metrics = train_main([str(hub_recipe)])
    assert set(_reads(local_hub)) == {"train-00000-of-00002.parquet", "train-00001-of-00002.parquet"}
    local_metrics = train_main([str(local_recipe)])
    assert hub_metrics["eval_loss"] == local_metrics["eval_loss"]  # the same 4 rows held out of the stream
    hub, local = load_weights(tmp_path / "hub"), load_weights(tmp_path / "local")
    assert hub.keys() == local.keys() and any(k.startswith("heads.") for k in hub)
    for key in local:  # the same rows in the same order (5-row shuffle buffer, seed 0): the same steps
        torch.testing.assert_close(hub[key], local[key], rtol=0, atol=0, msg=lambda m, k=key: f"{k}: {m}")
    card = (tmp_path / "hub" / "README.md").read_text()
    assert f"- {repo_id}" in card.split("---")[1]  # the card's `datasets` metadata names the Hub data set


def test_hub_stream_errors_name_the_data_set(local_hub, tmp_path):
    missing = write_recipe(tmp_path / "missing.yaml", tiny_recipe(
        None, tmp_path / "o", dataset=local_hub.repo_id("no-such-set"), streaming=True, train_file=None))
    with pytest.raises(RecipeError, match=r"hf-mtl-tester/no-such-set"):
        train_main([str(missing)])
    (tmp_path / "x.parquet").touch()
    both = write_recipe(tmp_path / "both.yaml", tiny_recipe(
        tmp_path / "x.parquet", tmp_path / "o", dataset=local_hub.repo_id("a-set"), streaming=True))
    with pytest.raises(RecipeError, match=r"leave `train_file`"):
        train_main([str(both)])
