"""Advice before training: which backbone transfers, whether to freeze it, which tasks to learn together.

Measurements on the user's own data: LogME of frozen features (no training), a heads-only probe of the pretrained
backbone against the same one randomly initialised, label statistics, and task affinity by lookahead (Fifty et al.,
2021). `advise` runs them all on a dataset and writes a report folder; `hf-mtl advise <recipe>`
(`hf_mtl.scripts.advise.advise_recipe`) resolves a recipe into its arguments.
"""

from __future__ import annotations

from .advisor import ModelFactory, advise, backbone_factory, parse_candidate
from .affinity import TaskAffinity, feature_task_affinity, lookahead_affinity, suggest_grouping
from .data_report import data_report
from .logme import logme, logme_targets
from .probe import probe

__all__ = [
    "ModelFactory",
    "TaskAffinity",
    "advise",
    "backbone_factory",
    "data_report",
    "feature_task_affinity",
    "logme",
    "logme_targets",
    "lookahead_affinity",
    "parse_candidate",
    "probe",
    "suggest_grouping",
]
