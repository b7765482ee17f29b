"""Frozen-backbone feature cache: run a frozen backbone over a dataset once and train the heads on its pooled features.

The cache is an Arrow dataset on disk (``save_to_disk``) named by a fingerprint of the backbone (config and every
weight and buffer) and of the preprocessing (the ``datasets`` fingerprint, which covers the data and any
``with_transform`` / ``map`` applied, plus the collator's tokenizer). Change either and the key changes, so a stale
cache is never read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .blocks import unwrap_multitask_model

logger = logging.getLogger(__name__)

FEATURES_COLUMN = "features"


def backbone_fingerprint(model: nn.Module) -> str:
    """A hash of everything that decides the backbone's pooled features: its config, weights and buffers."""
    base = unwrap_multitask_model(model)
    config = base.config
    digest = hashlib.sha256()
    spec = {
        "backbone": config.backbone,
        "library": config.backbone_library,
        "backbone_config": config.backbone_config,
        "backbone_kwargs": config.backbone_kwargs,
        "pooling": config.pooling,
    }
    digest.update(json.dumps(spec, sort_keys=True, default=str).encode())
    for name, tensor in sorted(base.backbone.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def preprocessing_fingerprint(dataset: Any, collator: Any) -> str:
    """A hash of the dataset's content and transforms (its ``datasets`` fingerprint) and of how the collator turns
    rows into model inputs (its tokenizer and input names; label handling does not change features)."""
    from datasets.fingerprint import Hasher

    fingerprint = getattr(dataset, "_fingerprint", None)
    if fingerprint is None:
        raise TypeError(f"the feature cache needs a datasets.Dataset (with a fingerprint), got {type(dataset).__name__}")
    # Hashed, not repr'd: the repr of a ``with_transform`` format names the function's address, new in every process.
    parts = {"dataset": fingerprint, "format": Hasher.hash(dataset.format)}
    if hasattr(collator, "input_names"):
        parts["collator"] = Hasher.hash((type(collator).__qualname__, getattr(collator, "tokenizer", None),
                                         collator.input_names))
    else:
        parts["collator"] = Hasher.hash(collator)
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def default_cache_dir(dataset: Any) -> str:
    """Beside the dataset's own Arrow cache files when it has some, else under the ``datasets`` cache."""
    files = getattr(dataset, "cache_files", None)
    if files:
        return os.path.join(os.path.dirname(files[0]["filename"]), "hf_mtl_features")
    import datasets

    return os.path.join(str(datasets.config.HF_DATASETS_CACHE), "hf_mtl_features")


def cache_features(
    model: nn.Module,
    dataset: Any,
    collator: Any = None,
    *,
    batch_size: int = 64,
    cache_dir: str | os.PathLike | None = None,
    keep_columns: list[str] | None = None,
    check_augmentation: bool = True,
    num_workers: int = 0,
    process_index: int = 0,
    num_processes: int = 1,
    wait_for_everyone: Callable[[], None] | None = None,
) -> Any:
    """The dataset as pooled backbone ``features`` plus its label columns, computed once and cached on disk.

    Args:
        model: a [`MultiTaskModel`] whose backbone is frozen.
        dataset: a ``datasets.Dataset`` of model inputs (or raw inputs with a preprocessing ``with_transform``), or a
            [`TrainingStream`]: one pass of it is cached (each process its own share), and training then reads
            memory-mapped features instead of the stream.
        collator: turns rows into model inputs; default a [`MultiTaskDataCollator`] for the model's tasks.
        keep_columns: columns kept beside ``features``; default the task label columns the dataset has.
        check_augmentation: preprocess the first rows twice and refuse to cache if they differ (random augmentation
            would be frozen into the cache).
        num_workers: ``DataLoader`` workers that preprocess rows while the backbone runs.
        process_index, num_processes, wait_for_everyone: with several processes each computes its share (a
            contiguous range of rows, or its share of a stream) into its own Arrow part; once all have, the main
            process publishes the folder (one rename) and every process reads all parts back as one dataset.
    Returns:
        A dataset with a ``features`` column (torch format) that [`MultiTaskModel.forward`] takes instead of inputs.
    """
    from ..data import MultiTaskDataCollator, TrainingStream

    base = unwrap_multitask_model(model)
    trainable = [name for name, p in base.backbone.named_parameters() if p.requires_grad]
    if trainable:
        raise ValueError(
            f"cannot cache features of a backbone that trains ({len(trainable)} trainable tensors, e.g. "
            f"{trainable[0]!r}): the cache would go stale; freeze it first (freeze_policy='heads')"
        )
    collator = collator if collator is not None else MultiTaskDataCollator(base.task_specs)
    stream = isinstance(dataset, TrainingStream)
    if keep_columns is None:
        label_columns = getattr(collator, "label_columns", {}) or {}
        wanted = {label_columns.get(name, name) for name in base.config.task_names}
        keep_columns = [c for c in dataset.column_names if c in wanted]
    source = (stream_fingerprint(dataset, collator, num_processes) if stream
              else preprocessing_fingerprint(dataset, collator))
    key = hashlib.sha256((backbone_fingerprint(base) + source + repr(keep_columns)).encode()).hexdigest()[:24]
    path = os.path.join(os.fspath(cache_dir or default_cache_dir(dataset)), f"features-{key}")
    staging = os.path.join(os.path.dirname(path), f".tmp-features-{key}")
    wait = wait_for_everyone or (lambda: None)
    main = process_index == 0
    if main and not os.path.isdir(path) and os.path.isdir(staging):
        shutil.rmtree(staging, ignore_errors=True)  # parts of a run that died before publishing
    wait()  # from here every process sees the same folder: nobody writes until the next barrier
    if os.path.isdir(path):
        logger.info("feature cache hit: %s", path)
        try:  # written atomically, so only damage from outside makes it unreadable; datasets' error names no folder
            return _as_training_dataset(_load_cache(path))
        except Exception as err:
            raise ValueError(f"feature cache {path!r} cannot be read ({type(err).__name__}: {err}); delete the "
                             "folder and it is computed again") from err
    if check_augmentation and not stream:
        _check_deterministic(dataset, collator)
    os.makedirs(staging, exist_ok=True)
    part = os.path.join(staging, f"part-{process_index:05d}-of-{num_processes:05d}.arrow")
    if stream:
        rows = _write_stream_part(base, dataset, collator, keep_columns, part, batch_size)
    else:
        start, stop = len(dataset) * process_index // num_processes, len(dataset) * (process_index + 1) // num_processes
        share = dataset.select(range(start, stop)) if num_processes > 1 else dataset
        rows = _write_part(base, share, collator, keep_columns, part, batch_size, num_workers)
    logger.info("feature cache part %d/%d: %d rows", process_index + 1, num_processes, rows)
    wait()
    if main:
        with open(os.path.join(staging, PARTS_FILE), "w", encoding="utf-8") as handle:
            json.dump({"parts": sorted(n for n in os.listdir(staging) if n.endswith(".arrow"))}, handle)
        try:
            os.replace(staging, path)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not os.path.isdir(path):
                raise
    wait()
    with open(os.path.join(path, PARTS_FILE), encoding="utf-8") as handle:
        found = len(json.load(handle)["parts"])
    if found != num_processes:  # every process reads the same index: all raise, none waits for the others
        raise ValueError(
            f"feature cache {path}: {found} of {num_processes} processes' parts were found; processes on other nodes "
            "must write to the same folder (put `feature_cache_dir` on a file system every node shares)"
        )
    cached = _load_cache(path)
    logger.info("feature cache written: %s (%d rows in %d parts)", path, len(cached), num_processes)
    return _as_training_dataset(cached)


PARTS_FILE = "parts.json"


def _load_cache(path: str) -> Any:
    """The cache as one memory-mapped dataset: its Arrow parts concatenated in process order."""
    import datasets

    index = os.path.join(path, PARTS_FILE)
    if not os.path.isfile(index):  # a cache written before parts (one `save_to_disk` folder)
        return datasets.load_from_disk(path)
    with open(index, encoding="utf-8") as handle:
        names = json.load(handle)["parts"]
    parts = [datasets.Dataset.from_file(os.path.join(path, name)) for name in names]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _cache_features_type(dataset_features: Any, keep_columns: list[str]) -> Any:
    import datasets

    kept = {c: dataset_features[c] for c in keep_columns if dataset_features is not None and c in dataset_features}
    if len(kept) < len(keep_columns):
        return None  # untyped columns (a JSON stream): the writer infers them
    return datasets.Features({**kept, FEATURES_COLUMN: datasets.List(datasets.Value("float32"))})


def _write_part(base: nn.Module, share: Any, collator: Any, keep_columns: list[str], part: str, batch_size: int,
                num_workers: int) -> int:
    from datasets.arrow_writer import ArrowWriter

    features = compute_features(base, share, collator, batch_size=batch_size, num_workers=num_workers) \
        if len(share) else torch.empty(0, 0)
    raw = share.with_format(None).select_columns(keep_columns).flatten_indices()
    with ArrowWriter(features=_cache_features_type(raw.features, keep_columns), path=part) as writer:
        for start in range(0, len(raw), 1000):
            batch = raw[start:start + 1000]
            batch[FEATURES_COLUMN] = list(features[start:start + 1000].numpy())
            writer.write_batch(batch)
        if not len(raw):
            writer.write_batch({**{c: [] for c in keep_columns}, FEATURES_COLUMN: []})
        writer.finalize()
    return len(raw)


@torch.no_grad()
def _write_stream_part(base: nn.Module, stream: Any, collator: Any, keep_columns: list[str], part: str,
                       batch_size: int) -> int:
    """One pass of this process's stream, batch by batch into an Arrow file: memory holds one batch."""
    from datasets.arrow_writer import ArrowWriter

    backbone = base.backbone
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    rows, buffer = 0, []
    writer = ArrowWriter(features=_cache_features_type(stream.features, keep_columns), path=part)

    def flush() -> None:
        batch = collator(buffer)
        inputs = {k: v.to(device) for k, v in batch.items() if k in backbone.input_names}
        features = backbone(**inputs).float().cpu().numpy()
        writer.write_batch({**{c: [row.get(c) for row in buffer] for c in keep_columns},
                            FEATURES_COLUMN: list(features)})

    try:
        for row in stream.one_pass():
            buffer.append(row)  # (its row id names the row if the collator finds a bad label)
            rows += 1
            if len(buffer) == batch_size:
                flush()
                buffer = []
        if buffer:
            flush()
        writer.finalize()
    finally:
        writer.close()
        backbone.train(was_training)
    return rows


def stream_fingerprint(stream: Any, collator: Any, num_processes: int) -> str:
    """A stream's cache key: its files (sizes, times), preprocessing, collator and how it is split over processes."""
    from datasets.fingerprint import Hasher

    parts = {"stream": stream.fingerprint(), "processes": num_processes,
             "collator": Hasher.hash((type(collator).__qualname__, getattr(collator, "tokenizer", None),
                                      getattr(collator, "input_names", None)))}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@torch.no_grad()
def compute_features(
    model: nn.Module, dataset: Any, collator: Any, batch_size: int = 64, num_workers: int = 0
) -> torch.Tensor:
    """Pooled backbone features of every row, in order, with the backbone in eval mode."""
    from torch.utils.data import DataLoader

    from ..progress import progress

    base = unwrap_multitask_model(model)
    backbone = base.backbone
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    # Its own generator: a DataLoader iterator draws a base seed from the global RNG even unshuffled, so computing the
    # cache would shift every later random draw, and a run that finds the cache would train differently from one
    # that computed it.
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collator, num_workers=num_workers,
                        generator=torch.Generator())
    chunks = []
    try:
        for batch in progress(loader, desc="caching backbone features", disable=len(loader) < 2):
            inputs = {k: v.to(device) for k, v in batch.items() if k in backbone.input_names}
            chunks.append(backbone(**inputs).float().cpu())
    finally:
        backbone.train(was_training)
    return torch.cat(chunks)


def _check_deterministic(dataset: Any, collator: Any, rows: int = 8) -> None:
    """Preprocess the first rows twice: a random augmentation (even a coin-flip one) shows up as a difference."""
    indices = list(range(min(rows, len(dataset))))
    first = collator([dataset[i] for i in indices])
    second = collator([dataset[i] for i in indices])
    for name, value in first.items():
        if isinstance(value, torch.Tensor) and not torch.equal(value, second[name]):
            raise ValueError(
                f"preprocessing gives different {name!r} for the same rows: the inputs are randomly augmented, so "
                "cached features would freeze one augmentation; cache only un-augmented data (e.g. train=False)"
            )


def _as_training_dataset(dataset: Any) -> Any:
    return dataset.with_format("torch", columns=[FEATURES_COLUMN], output_all_columns=True)
