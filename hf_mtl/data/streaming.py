"""Streaming data: a ``datasets.IterableDataset`` read shard by shard from local files, each process reading its own
shards, and [`TrainingStream`], what [`MultiTaskTrainer`] trains on when the data does not fit in memory.

Why [`split_stream`] reads a process's shards round-robin (one row from each shard in turn): the stream then does not
depend on the number of processes. With shards split over W processes (``datasets.distributed.split_dataset_by_node``)
step s of W processes with batch b sees the same rows as step s of one process with batch W·b, as the map-style path
does, so a run can move from 1 to W processes (or back, on resume) without changing what it trains on.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from ..preprocessing import text_problem
from ..tasks import TaskSpec
from .collator import ROW_ID_COLUMN, encode_labels

logger = logging.getLogger(__name__)


STREAM_KINDS = ("parquet", "json")
READ_BATCH_ROWS = 64
"""Rows read from a file at once: memory holds this many rows per open shard, whatever the data set's size."""
READ_BUFFER_BYTES = 1 << 20
"""Bytes a Parquet shard is read by (buffered, not pre-buffered). pyarrow's default reads a whole row group's column
chunks at once, and a file written with pyarrow's defaults is one row group of up to 1Mi rows: memory per open shard
would grow with the file. Buffered reads hold about this many bytes of a column chunk per open shard instead."""


def stream_files(
    files: Sequence[str | os.PathLike],
    kind: str,
    path_columns: Sequence[str] = (),
    read_batch_rows: int = READ_BATCH_ROWS,
) -> Any:
    """A ``datasets.IterableDataset`` over local ``parquet`` or ``json`` (JSON lines) shards, one shard per file.

    Every row gets [`ROW_ID_COLUMN`] (file name and row in that file: its data-set coordinates). Relative paths in
    ``path_columns`` (image files) are resolved against the folder of the file that names them. Features come from the
    Parquet schema (``datasets`` metadata included: ``ClassLabel``, ``Image``) or from the first rows of a JSON file.
    """
    import datasets

    if kind not in STREAM_KINDS:
        raise ValueError(f"streaming reads {STREAM_KINDS} files (or an imagefolder); got {kind!r}")
    files = sorted(os.path.abspath(os.fspath(f)) for f in files)
    if not files:
        raise ValueError("streaming: no data files given")
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ValueError(f"streaming: data files do not exist: {missing[:5]}")
    features = _file_features(files[0], kind)
    if features is not None:  # images stay undecoded (bytes / path) until preprocessing: a resume replays rows cheaply
        features = datasets.Features({**{name: datasets.Image(decode=False) if isinstance(f, datasets.Image) else f
                                         for name, f in features.items()}, ROW_ID_COLUMN: datasets.Value("string")})
    return datasets.IterableDataset.from_generator(
        _read_shards, features=features,
        gen_kwargs={"shards": files, "kind": kind, "path_columns": tuple(path_columns), "batch_rows": read_batch_rows},
    )


def stream_imagefolder(data_dir: str | os.PathLike, split: str = "train") -> Any:
    """An imagefolder's split as a stream (``datasets``' own streaming loader: one shard per image file), images
    undecoded, each row named by its image path ([`ROW_ID_COLUMN`])."""
    import datasets

    loaded = datasets.load_dataset("imagefolder", data_dir=os.fspath(data_dir), streaming=True)
    if split not in loaded:
        raise ValueError(f"imagefolder {os.fspath(data_dir)!r} has no {split!r} split (splits: {list(loaded)})")
    stream = loaded[split]
    column = next((n for n, f in (stream.features or {}).items() if isinstance(f, datasets.Image)), "image")
    stream = stream.cast_column(column, datasets.Image(decode=False))
    return stream.map(lambda row: {ROW_ID_COLUMN: (row[column] or {}).get("path") or "?"},
                      features=datasets.Features({**stream.features, ROW_ID_COLUMN: datasets.Value("string")}))


def data_files(pattern_or_paths: str | Sequence[str]) -> list[str]:
    """A file, a folder (its files, sorted) or a glob pattern → the shard files."""
    import glob

    if not isinstance(pattern_or_paths, str):
        return [p for item in pattern_or_paths for p in data_files(item)]
    if os.path.isdir(pattern_or_paths):
        return sorted(os.path.join(pattern_or_paths, n) for n in os.listdir(pattern_or_paths)
                      if n.endswith((".parquet", ".jsonl", ".json")))
    found = sorted(glob.glob(pattern_or_paths))
    return found or [pattern_or_paths]


def _file_features(path: str, kind: str) -> Any:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind == "parquet":
        return datasets.Features.from_arrow_schema(pq.read_schema(path))
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) >= 1000:
                break
    schema = pa.Table.from_pylist(rows).schema if rows else None
    if schema is None or any(pa.types.is_null(f.type) for f in schema):
        return None  # a column with no value in the first rows: rows pass through untyped
    return datasets.Features.from_arrow_schema(schema)


def parquet_rows(source: Any, batch_rows: int = READ_BATCH_ROWS) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet file (a path, or an open binary file such as a Hub file read by range requests), read
    ``batch_rows`` at a time with buffered, not pre-buffered, reads ([`READ_BUFFER_BYTES`]): memory stays bounded
    whatever the file's row groups."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(source, pre_buffer=False, buffer_size=READ_BUFFER_BYTES).iter_batches(
            batch_size=batch_rows):
        yield from batch.to_pylist()


def _read_shards(shards: list[str], kind: str, path_columns: tuple[str, ...], batch_rows: int
                 ) -> Iterator[dict[str, Any]]:
    for path in shards:
        yield from _read_file(path, kind, path_columns, batch_rows)


def _read_file(path: str, kind: str, path_columns: tuple[str, ...], batch_rows: int) -> Iterator[dict[str, Any]]:
    name, base = os.path.basename(path), os.path.dirname(path)

    def finish(row: dict[str, Any], index: int) -> dict[str, Any]:
        for column in path_columns:
            value = row.get(column)
            if isinstance(value, str) and not os.path.isabs(value) and os.path.exists(os.path.join(base, value)):
                row[column] = os.path.join(base, value)
        row[ROW_ID_COLUMN] = f"{name} row {index}"
        return row

    index = 0
    if kind == "parquet":
        for index, row in enumerate(parquet_rows(path, batch_rows)):
            yield finish(row, index)
        return
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} line {line_number} is not valid JSON: {err}") from err
            yield finish(row, index)
            index += 1


OPEN_SHARDS = 16
"""Shards read at once (round-robin) over all processes: memory holds a row group of each open shard, so it is
bounded by this, not by the number of shards or rows; the next ``OPEN_SHARDS`` shards open when these are read."""


def split_stream(dataset: Any, rank: int = 0, world_size: int = 1, open_shards: int = OPEN_SHARDS) -> Any:
    """This process's share of ``dataset``, read round-robin over groups of its shards (one row of each in turn).

    With a number of shards that is a multiple of ``world_size`` each process reads only its own shards
    (``datasets.distributed.split_dataset_by_node``); else every process reads every shard and keeps one row in
    ``world_size``. Shards are read ``open_shards`` at a time (over all processes), group after group. Either way step
    s of ``world_size`` processes with batch b sees the rows of step s of one process with batch ``world_size``·b
    (b a multiple of the open shards per process, ``open_shards`` a multiple of ``world_size``; unshuffled; shards of
    equal length).
    """
    from datasets.distributed import split_dataset_by_node

    if world_size > 1 and dataset.num_shards % world_size == 0:
        share = split_dataset_by_node(dataset, rank=rank, world_size=world_size)  # shards rank, rank + W, ...
        return _round_robin(share, max(1, open_shards // world_size))
    if world_size > 1:
        logger.warning("the stream has %d shards for %d processes: each process reads every shard and keeps 1 row in %d "
                       "(write a multiple of %d shards so that each reads only its own)", dataset.num_shards,
                       world_size, world_size, world_size)
    whole = _round_robin(dataset, open_shards)
    return split_dataset_by_node(whole, rank=rank, world_size=world_size) if world_size > 1 else whole


def _round_robin(dataset: Any, open_shards: int) -> Any:
    """One row of each of ``open_shards`` shards in turn until they are read, then the next group
    (``datasets.interleave_datasets`` within a group, ``concatenate_datasets`` of the groups: lazily opened)."""
    import datasets

    n = dataset.num_shards
    if n <= 1:
        return dataset
    groups = []
    for first in range(0, n, open_shards):
        parts = [dataset.shard(num_shards=n, index=i) for i in range(first, min(first + open_shards, n))]
        groups.append(parts[0] if len(parts) == 1 else
                      datasets.interleave_datasets(parts, stopping_strategy="all_exhausted_without_replacement"))
    return groups[0] if len(groups) == 1 else datasets.concatenate_datasets(groups)


def shuffle_stream(dataset: Any, seed: int, buffer_size: int) -> Any:
    """``dataset`` (a [`split_stream`] share) shuffled with a buffer of ``buffer_size`` rows and a seed, its shards
    still read ``OPEN_SHARDS`` at a time.

    Recent ``datasets`` (5.x) shuffles by also interleaving up to ``max_buffer_input_shards`` (10) of the stream's shards at
    once; a share of more than ``OPEN_SHARDS`` shards is a concatenation of round-robin groups, so it would open up to
    10 groups at once (128 shards: every shard open, one reader thread each, peak memory growing with the number of
    shards). The groups' round robin already mixes shards; the shuffle here reads one group at a time (group order and
    buffer still shuffled by ``seed``).
    """
    import inspect

    extra = {"max_buffer_input_shards": 1} if "max_buffer_input_shards" in inspect.signature(dataset.shuffle).parameters \
        else {}
    return dataset.shuffle(seed=seed, buffer_size=buffer_size, **extra)


class TrainingStream(torch.utils.data.IterableDataset):
    """This process's share of a ``datasets.IterableDataset``, preprocessed row by row, pass after pass.

    - Passes repeat without end (``max_steps`` ends training); pass k calls ``dataset.set_epoch(k)``, so a shuffled
      stream (``dataset.shuffle(seed, buffer_size)``) is reshuffled, with the same order on every run.
    - Every batch of every process is full, so after s optimizer steps each process has consumed exactly
      ``s · gradient_accumulation_steps · per_device_batch`` rows: [`MultiTaskTrainer`] sets ``resume_rows`` on resume
      and the stream replays that many raw rows (no preprocessing) before yielding again, so a resumed run trains on
      the rows the uninterrupted run would have. (The shuffle buffer of ``datasets``' own ``state_dict`` is not
      saved, so it would resume on other rows; a replay restores it exactly.)
    - ``check(...)`` validates the first ``validate_rows`` labels and inputs before step 1, naming each row by its
      data-set coordinates ([`ROW_ID_COLUMN`]).

    Args:
        dataset: a ``datasets.IterableDataset`` (already this process's share: [`split_stream`]).
        transform: a batch transform (``hf_mtl.preprocessing.dataset_transform``) applied to chunks of rows.
        validate_rows: how many rows ``check`` reads (MultiTaskTrainer passes ``validate_stream_rows``).
        description: what the stream is (files, shards), for logs, errors and the feature-cache key.
    """

    def __init__(self, dataset: Any, transform: Callable[[dict[str, list]], dict[str, Any]] | None = None,
                 validate_rows: int = 1000, description: Any = None, chunk_rows: int = 16) -> None:
        self.dataset = dataset
        self.transform = transform
        self.validate_rows = validate_rows
        self.description = description
        self.chunk_rows = chunk_rows
        self.resume_rows = 0

    @property
    def features(self) -> Any:
        return self.dataset.features

    @property
    def column_names(self) -> list[str]:
        names = self.dataset.column_names
        if names is None:  # untyped rows (JSON with empty columns in its first rows): the first row's keys
            names = list(next(iter(self.raw_rows(0)), {}))
        return [name for name in names if name != ROW_ID_COLUMN]

    def raw_rows(self, pass_index: int = 0) -> Iterator[dict[str, Any]]:
        """One pass of raw rows (before preprocessing)."""
        self.dataset.set_epoch(pass_index)
        yield from self.dataset

    def _prepared(self, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Raw rows preprocessed ``chunk_rows`` at a time."""
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == self.chunk_rows:
                yield from self._prepare(chunk)
                chunk = []
        if chunk:
            yield from self._prepare(chunk)

    def one_pass(self, pass_index: int = 0) -> Iterator[dict[str, Any]]:
        """One pass of preprocessed rows (what the feature cache reads once)."""
        yield from self._prepared(self.raw_rows(pass_index))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        to_skip, pass_index = self.resume_rows, 0
        if to_skip:
            logger.info("resuming the stream: replaying %d rows of this process's share", to_skip)
        while True:
            seen = 0

            def kept(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
                nonlocal seen, to_skip
                for row in rows:
                    seen += 1
                    if to_skip:
                        to_skip -= 1
                        continue
                    yield row

            yield from self._prepared(kept(self.raw_rows(pass_index)))
            if seen == 0:
                raise ValueError(f"the stream {self.description or ''} has no rows for this process: nothing to train on")
            pass_index += 1
            logger.info("stream pass %d done (%d rows on this process); pass %d starts", pass_index, seen, pass_index + 1)

    def _prepare(self, rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        if self.transform is None:
            yield from rows
            return
        try:
            out = self.transform({key: [row.get(key) for row in rows] for key in rows[0]})
        except (ValueError, KeyError, OSError, TypeError) as err:
            if len(rows) > 1:  # find the row, to name it
                for row in rows:
                    yield from self._prepare([row])
            raise ValueError(f"stream row {rows[0].get(ROW_ID_COLUMN, '?')}: {err}") from err
        for i in range(len(rows)):
            yield {key: values[i] for key, values in out.items()}

    def check(self, specs: Sequence[TaskSpec], label_columns: Mapping[str, str] | None = None,
              known_label_columns: Mapping[str, str] | None = None, decode_images: bool = False,
              max_rows: int | None = None) -> dict[str, int]:
        """Labels and raw inputs of the first ``max_rows`` (default ``validate_rows``) rows of this process's stream,
        before step 1.

        An error names the task, column and the row's data-set coordinates. Returns present labels per task."""
        from .validation import image_problem

        limit = self.validate_rows if max_rows is None else max_rows
        transform = self.transform
        input_column = getattr(transform, "input_column", None)
        kind = getattr(transform, "input_kind", None)
        allow_empty = bool(getattr(transform, "allow_empty_text", False))
        check_input = text_problem if kind == "text" else (
            (lambda v, _a: image_problem(v, decode=decode_images)) if kind == "image" else None)
        features = self.features
        label_columns = dict(label_columns or {})
        counts = {spec.name: 0 for spec in specs}
        rows = []
        for i, row in enumerate(self.raw_rows(0)):
            if i >= limit:
                break
            if i == 0:
                for spec in specs:
                    column = label_columns.get(spec.name, spec.name)
                    if column not in row:
                        raise ValueError(f"task {spec.name!r}: the stream has no label column {column!r} (columns: "
                                         f"{sorted(k for k in row if k != ROW_ID_COLUMN)})")
            if check_input is not None:
                if input_column not in row:
                    raise ValueError(f"{row.get(ROW_ID_COLUMN)}: no input column {input_column!r}")
                problem = check_input(row[input_column], allow_empty)
                if problem is not None:
                    raise ValueError(f"column {input_column!r}, {row.get(ROW_ID_COLUMN)}: {problem}")
            rows.append(row)
            if len(rows) == 256:
                self._count(specs, rows, label_columns, known_label_columns, features, counts)
                rows = []
        if rows:
            self._count(specs, rows, label_columns, known_label_columns, features, counts)
        for name, count in counts.items():
            if count == 0:
                logger.warning("task %r has no present label in the first %d stream rows", name, limit)
        return counts

    @staticmethod
    def _count(specs, rows, label_columns, known_label_columns, features, counts) -> None:
        encoded = encode_labels(specs, rows, label_columns, known_label_columns=known_label_columns, features=features,
                                row_ids=[row.get(ROW_ID_COLUMN) for row in rows])
        for spec in specs:
            counts[spec.name] += int(spec.task_type.count_present(encoded[spec.name]))

    def head_rows(self, columns: Sequence[str], max_rows: int | None = None) -> list[dict[str, Any]]:
        """The first ``max_rows`` (default ``validate_rows``) raw rows of pass 0, the rows ``check`` validates, reduced
        to ``columns``: what statistics estimated before step 1 read (regression targets' mean / std)."""
        import itertools

        limit = self.validate_rows if max_rows is None else max_rows
        return [{column: row.get(column) for column in columns} for row in itertools.islice(self.raw_rows(0), limit)]

    def fingerprint(self) -> str:
        """What decides the rows' content: the description (files with sizes and times) and the preprocessing."""
        from datasets.fingerprint import Hasher

        return Hasher.hash((self.description, self.transform))


def describe_files(files: Sequence[str]) -> list[tuple[str, int, float]]:
    """``(path, size, mtime)`` of each file: a changed file changes the description (and a feature-cache key)."""
    return [(os.path.abspath(f), os.path.getsize(f), os.path.getmtime(f)) for f in files]
