"""`advise`: the measurements behind "should I transfer, from which backbone, how much of it to retrain, and which
tasks to learn together?", on the recipe's own data, written as a report folder."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..tasks import TaskSpec
from .affinity import feature_task_affinity
from .data_report import data_report
from .logme import logme
from .probe import probe

logger = logging.getLogger(__name__)

__all__ = ["advise", "parse_candidate", "score_backbone", "TRANSFER_HELPS_FROM"]

TRANSFER_HELPS_FROM = 0.05
"""Pretrained features 'help' when the probe's validation loss is at least this fraction below the random control's."""


def parse_candidate(text: str, default_weights: str = "pretrained") -> tuple[str, str]:
    """``name`` or ``name@weights`` (weights: pretrained, none, a packaged name or a file) → ``(name, weights)``."""
    name, _, weights = text.partition("@")
    if not name:
        raise ValueError(f"backbone candidate {text!r}: give a backbone name, optionally followed by @weights")
    return name, weights or default_weights


def _features(model_args: Any, data_args: Any, raw: Any, specs: list[TaskSpec], cache_dir: str, batch_size: int,
              seed: int):
    """Pooled features of the frozen backbone over ``raw`` (through the feature cache) and its size. Seeded, so a
    randomly initialised backbone is the same one on every run and its cached features are found again."""
    from ..data import MultiTaskDataCollator
    from ..scripts.models import build_model, build_model_processor
    from ..scripts.recipe_data import input_column, with_preprocessing
    from ..transfer.blocks import backbone_blocks
    from ..transfer.feature_cache import FEATURES_COLUMN, cache_features

    torch.manual_seed(seed)
    model = build_model(model_args)
    model.backbone.requires_grad_(False)
    processor = build_model_processor(model, model_args)
    dataset = with_preprocessing(raw, processor, input_column(data_args, raw), train=False,
                                 allow_empty_text=data_args.allow_empty_text)
    collator = MultiTaskDataCollator(specs, tokenizer=processor, label_columns=data_args.label_columns or {})
    cached = cache_features(model, dataset, collator, batch_size=batch_size, cache_dir=cache_dir)
    features = torch.stack(list(cached[FEATURES_COLUMN])) if not isinstance(cached[FEATURES_COLUMN], torch.Tensor) \
        else cached[FEATURES_COLUMN]
    info = {"params": sum(p.numel() for p in model.backbone.parameters()), "blocks": len(backbone_blocks(model)),
            "num_features": int(features.shape[1])}
    return features.double(), info


def _logme_per_task(features: torch.Tensor, labels: dict[str, torch.Tensor], specs: list[TaskSpec]) -> dict[str, float]:
    return {spec.name: round(logme(features, labels[spec.name], spec), 6) for spec in specs}


def score_backbone(model_args: Any, data_args: Any, raw: Any, labels: dict[str, torch.Tensor], specs: list[TaskSpec],
                   cache_dir: str, batch_size: int = 64, seed: int = 0) -> tuple[dict[str, float], dict[str, Any]]:
    """LogME per task of one candidate (the recipe's model arguments: backbone, weights, image size, pooling) on the
    rows ``raw`` with encoded ``labels``; one pass of the frozen backbone through the feature cache."""
    features, info = _features(model_args, data_args, raw, specs, cache_dir, batch_size, seed)
    return _logme_per_task(features, labels, specs), info


def _freeze_verdict(pretrained: dict, random: dict, num_samples: int, specs: list[TaskSpec], info: dict) -> dict:
    """Freeze policy from the probe (does transfer help?) and, when it does, the `auto` rule on data and model size."""
    from ..transfer.freezing import choose_freeze_policy

    gains = {name: (random["val_loss"][name] - pretrained["val_loss"][name]) / max(random["val_loss"][name], 1e-12)
             for name in pretrained["val_loss"]}
    mean_gain = float(np.mean(list(gains.values())))
    helps = mean_gain >= TRANSFER_HELPS_FROM
    if helps:
        choice = choose_freeze_policy(num_samples, sum(s.output_size for s in specs), info["params"], info["blocks"])
        policy, reason = choice.policy, choice.reason
        if choice.policy == "top_n":
            reason += f" (freeze_top_n: {choice.trainable_blocks})"
    else:
        policy = "full"
        reason = (f"pretrained features cut the heads-only probe's validation loss by only {mean_gain:.1%} against "
                  f"the randomly initialised backbone (< {TRANSFER_HELPS_FROM:.0%}): frozen pretrained features buy "
                  "little here, so train the whole backbone (or try another backbone)")
    return {"transfer_helps": helps, "probe_loss_reduction": {k: round(v, 6) for k, v in gains.items()},
            "mean_probe_loss_reduction": round(mean_gain, 6), "policy": policy, "reason": reason}


def advise(
    recipe: str | os.PathLike | dict[str, Any],
    backbones: Sequence[str] | None = None,
    *,
    max_samples: int | None = 2000,
    output_dir: str | os.PathLike | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    affinity_steps: int = 100,
    probe_steps: int = 300,
    batch_size: int = 64,
    seed: int = 0,
    plots: bool = True,
) -> dict[str, Any]:
    """Measure transferability (LogME per backbone and task), a heads-only probe against a random-init control, the
    label statistics and task affinity on the recipe's training data; write ``advice.md``, ``advice.json`` and
    plots to ``output_dir``; return the advice as a dict.

    Args:
        recipe: a training recipe (YAML path or dict): its data, tasks, backbone and weights.
        backbones: candidates as ``name`` or ``name@weights`` (default: the recipe's backbone and weights).
        max_samples: training rows used (the first ones; None: all).
        output_dir: report folder (default: ``<recipe output_dir>/advice``).
    """
    from tqdm.auto import tqdm

    from ..data import encode_labels
    from ..scripts.arguments import parse_recipe
    from ..scripts.recipe_data import check_labels, load_recipe_datasets
    from .report import write_report

    started = time.perf_counter()
    model_args, data_args, _, training_args = parse_recipe(recipe, overrides)
    if max_samples is not None:
        data_args.max_train_samples = int(max_samples)
    specs = [TaskSpec.from_dict(t) for t in model_args.tasks]
    output_dir = os.fspath(output_dir or os.path.join(training_args.output_dir, "advice"))
    cache_dir = training_args.feature_cache_dir or os.path.join(output_dir, "feature_cache")
    candidates = [parse_candidate(c) for c in backbones] if backbones else [(model_args.backbone, model_args.weights)]
    train_raw, _ = load_recipe_datasets(data_args, seed=seed)
    if max_samples is not None and len(train_raw) > max_samples:
        train_raw = train_raw.select(range(max_samples))
    check_labels(train_raw, specs, data_args, "train")
    rows = train_raw.select_columns([c for c in train_raw.column_names
                                     if c in {(data_args.label_columns or {}).get(s.name, s.name) for s in specs}])
    labels = encode_labels(specs, rows.to_list(), data_args.label_columns or {},
                           features=getattr(train_raw, "features", None))
    timings: dict[str, float] = {}
    stages = len(candidates) + 3  # candidates, random control, probes, affinity
    bar = tqdm(total=stages, desc="advise", unit="stage")
    report: dict[str, Any] = {"recipe": os.fspath(recipe) if not isinstance(recipe, dict) else None,
                              "num_samples": len(train_raw), "tasks": [s.to_dict() for s in specs]}
    report["data"] = data_report(specs, labels)
    features: dict[str, torch.Tensor] = {}
    infos: dict[str, dict] = {}
    scores: dict[str, dict[str, float]] = {}
    for name, weights in candidates:
        key = name if weights == "pretrained" or len(candidates) == 1 else f"{name}@{weights}"
        bar.set_postfix_str(f"features: {key}")
        t0 = time.perf_counter()
        args = dataclasses.replace(model_args, backbone=name, weights=weights, model_name_or_path=None)
        features[key], infos[key] = _features(args, data_args, train_raw, specs, cache_dir, batch_size, seed)
        t1 = time.perf_counter()
        scores[key] = _logme_per_task(features[key], labels, specs)
        timings[f"features {key}"], timings[f"logme {key}"] = t1 - t0, time.perf_counter() - t1
        bar.update(1)
    mean_scores = {key: float(np.mean(list(s.values()))) for key, s in scores.items()}
    best = max(mean_scores, key=mean_scores.get)
    best_name, best_weights = candidates[list(scores).index(best)]
    report["backbones"] = {key: {"logme": scores[key], "mean_logme": round(mean_scores[key], 6), **infos[key]}
                           for key in scores}
    report["recommended_backbone"] = {"name": best_name, "weights": best_weights, "mean_logme": mean_scores[best]}
    bar.set_postfix_str("features: random-init control")
    t0 = time.perf_counter()
    args = dataclasses.replace(model_args, backbone=best_name, weights="none", model_name_or_path=None)
    control, _ = _features(args, data_args, train_raw, specs, cache_dir, batch_size, seed)
    report["random_init_control"] = {"backbone": best_name, "logme": _logme_per_task(control, labels, specs)}
    timings["features random-init"] = time.perf_counter() - t0
    bar.update(1)
    bar.set_postfix_str("heads-only probes")
    t0 = time.perf_counter()
    probes = {"pretrained": probe(features[best], labels, specs, steps=probe_steps, seed=seed),
              "random_init": probe(control, labels, specs, steps=probe_steps, seed=seed)}
    report["probe"] = {"backbone": best_name, **probes}
    report["freeze"] = _freeze_verdict(probes["pretrained"], probes["random_init"], len(train_raw), specs, infos[best])
    timings["probes"] = time.perf_counter() - t0
    bar.update(1)
    bar.set_postfix_str("task affinity")
    if len(specs) > 1:
        t0 = time.perf_counter()
        affinity = feature_task_affinity(features[best], labels, specs, steps=affinity_steps, seed=seed)
        report["affinity"] = {"backbone": best_name, **affinity.to_dict()}
        timings["affinity"] = time.perf_counter() - t0
    else:
        report["affinity"] = None
    bar.update(1)
    bar.close()
    timings["total"] = time.perf_counter() - started
    report["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    write_report(report, output_dir, plots=plots)
    report["output_dir"] = output_dir
    return report
