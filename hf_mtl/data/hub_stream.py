"""A Hub data set (``dataset: <owner>/<name>`` with ``streaming: true``) as a stream of its Parquet shards, read with
HTTP range requests through ``huggingface_hub``'s ``HfFileSystem``; nothing is downloaded first.

Why not ``datasets.load_dataset(repo_id, streaming=True)`` as it is: its rows carry no data-set coordinates (which
file, which row), which the first-rows check, held-out evaluation rows and error messages need ([`ROW_ID_COLUMN`]).
The files and splits are still the ones ``datasets`` finds (``load_dataset_builder``: the Hub's data-file conventions
and the README's ``configs``), one shard per file, so each process reads its own files (``split_stream``), and a row
is named as in the local stream (``<file> row <i>``): a data set streamed from the Hub trains on what the same shards
streamed from a local folder train on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from .collator import ROW_ID_COLUMN
from .streaming import READ_BATCH_ROWS, parquet_rows


def is_hub_dataset_id(name: str | None) -> bool:
    """``owner/name`` that is a valid Hub repo id and not a local path (a ``save_to_disk`` folder or a file)."""
    if not name or name.count("/") != 1 or os.path.exists(name):
        return False
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def stream_hub_dataset(repo_id: str, split: str = "train", read_batch_rows: int = READ_BATCH_ROWS
                       ) -> tuple[Any, list[str]]:
    """``(stream, files)``: ``split`` of the Hub data set ``repo_id`` as a ``datasets.IterableDataset`` of its Parquet
    files (one shard each, rows named ``<file> row <i>``), and the ``hf://`` URLs of the files. The URLs name the
    commit they were resolved at, so a new commit changes the stream's description and any feature-cache key."""
    import datasets
    import pyarrow.parquet as pq
    from huggingface_hub import HfFileSystem

    try:
        builder = datasets.load_dataset_builder(repo_id)
    except Exception as err:  # datasets' DatasetNotFoundError, huggingface_hub's HTTP errors, ...
        raise ValueError(f"Hub data set {repo_id!r} cannot be opened: {type(err).__name__}: {err}") from err
    splits = builder.config.data_files or {}
    if split not in splits:
        raise ValueError(f"Hub data set {repo_id!r} has no {split!r} split (splits: {sorted(splits)})")
    if builder.name != "parquet":
        raise ValueError(f"Hub data set {repo_id!r}: streaming reads Parquet files; its {split!r} files are read by "
                         f"datasets' {builder.name!r} loader ({list(splits[split])[:3]})")
    files = sorted(splits[split])
    fs = HfFileSystem()
    with fs.open(files[0], "rb") as handle:
        features = datasets.Features.from_arrow_schema(pq.read_schema(handle))
    # images stay undecoded (bytes) until preprocessing, as in the local stream: a resume replays rows cheaply
    features = datasets.Features({**{name: datasets.Image(decode=False) if isinstance(f, datasets.Image) else f
                                     for name, f in features.items()}, ROW_ID_COLUMN: datasets.Value("string")})
    stream = datasets.IterableDataset.from_generator(
        _read_hub_shards, features=features, gen_kwargs={"shards": files, "batch_rows": read_batch_rows})
    return stream, files


def _read_hub_shards(shards: list[str], batch_rows: int) -> Iterator[dict[str, Any]]:
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem()
    for url in shards:
        name = url.rsplit("/", 1)[-1]
        with fs.open(url, "rb") as handle:  # bounded reads as a local shard's: range requests of about a buffer each
            for index, row in enumerate(parquet_rows(handle, batch_rows)):
                row[ROW_ID_COLUMN] = f"{name} row {index}"
                yield row
