"""Mixing datasets that label different tasks into one training stream (labels a dataset lacks are missing)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def sampling_probabilities(sizes: Sequence[int], sampling: str = "proportional", temperature: float = 2.0) -> list[float]:
    """Mixing probabilities: ``proportional`` (∝ size), ``temperature`` (∝ size^(1/T)), ``uniform``."""
    sizes_arr = np.asarray(sizes, dtype=np.float64)
    if sizes_arr.size == 0 or (sizes_arr <= 0).any():
        raise ValueError(f"every dataset to mix needs at least one row, got sizes {list(sizes)}")
    if sampling == "proportional":
        weights = sizes_arr
    elif sampling == "temperature":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        weights = sizes_arr ** (1.0 / temperature)
    elif sampling == "uniform":
        weights = np.ones_like(sizes_arr)
    else:
        raise ValueError(f"unknown sampling {sampling!r}; choose 'proportional', 'temperature' or 'uniform'")
    return (weights / weights.sum()).tolist()


def mix_datasets(
    datasets_by_name: Mapping[str, Any],
    sampling: str = "proportional",
    temperature: float = 2.0,
    probabilities: Sequence[float] | None = None,
    seed: int | None = None,
    stopping_strategy: str = "all_exhausted",
    source_column: str | None = "source",
) -> Any:
    """Interleave datasets that label different tasks into one training stream (``datasets.interleave_datasets``).

    Every dataset gets the label columns it lacks as all-``None`` columns (so those labels are *missing*, never
    negative), with the feature type the other datasets give them; ``source_column`` records where a row came from.
    Sampling is ``proportional`` to size, ``temperature`` (∝ size^(1/T): T=1 proportional, large T uniform),
    ``uniform``, or explicit ``probabilities``. With ``stopping_strategy="all_exhausted"`` every row is seen once
    and smaller datasets are repeated (see ``datasets.interleave_datasets``).
    """
    import datasets

    if len(datasets_by_name) < 1:
        raise ValueError("mix_datasets needs at least one dataset")
    names = list(datasets_by_name)
    parts = list(datasets_by_name.values())
    all_features: dict[str, Any] = {}
    for name, part in zip(names, parts):
        if part.features is None:
            raise ValueError(f"dataset {name!r} has unknown features; call `.cast(features)` on it before mixing")
        for column, feature in part.features.items():
            if column in all_features and all_features[column] != feature:
                raise ValueError(
                    f"column {column!r} has feature {feature!r} in dataset {name!r} but {all_features[column]!r} in "
                    "another dataset; cast them to one type before mixing"
                )
            all_features.setdefault(column, feature)
    if source_column is not None:
        if source_column in all_features:
            raise ValueError(f"column {source_column!r} already exists; pass another `source_column` or None")
        all_features[source_column] = datasets.Value("string")
    features = datasets.Features(all_features)
    aligned = []
    for name, part in zip(names, parts):
        missing = [c for c in features if c not in part.features]

        def fill(batch: dict[str, list], missing: list[str] = missing, name: str = name) -> dict[str, list]:
            n = len(next(iter(batch.values())))
            return {c: ([name] * n if c == source_column else [None] * n) for c in missing}

        if isinstance(part, datasets.Dataset):  # add_column appends to the Arrow table: images are not rewritten
            for column in missing:
                values = [name] * len(part) if column == source_column else [None] * len(part)
                part = part.add_column(column, values, feature=features[column])
            aligned.append(part.select_columns(list(features)))
        else:
            aligned.append(part.map(fill, batched=True, features=features) if missing else part)
    if probabilities is None:
        try:
            sizes = [len(part) for part in parts]
        except TypeError as err:
            raise ValueError("iterable datasets have no length: pass `probabilities` explicitly") from err
        probabilities = sampling_probabilities(sizes, sampling, temperature)
    if len(probabilities) != len(parts) or abs(sum(probabilities) - 1.0) > 1e-6:
        raise ValueError(f"probabilities must have one entry per dataset and sum to 1, got {list(probabilities)}")
    logger.info("mixing %s with probabilities %s", names, [round(p, 4) for p in probabilities])
    return datasets.interleave_datasets(
        aligned, probabilities=list(probabilities), seed=seed, stopping_strategy=stopping_strategy
    )
