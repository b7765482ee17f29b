"""Advice before training: which backbone transfers, whether to freeze it, which tasks to learn together.

Measurements on the user's own data: LogME of frozen features (no training), a heads-only probe of the pretrained
backbone against the same one randomly initialised, label statistics, and task affinity by lookahead (Fifty et al.,
2021). `advise` runs them all and writes a report folder; `hf-mtl advise <recipe>` is its command line.
"""

from __future__ import annotations

from .logme import logme, logme_targets

__all__ = ["logme", "logme_targets"]
