"""`advise`: the measurements behind "should I transfer, from which backbone, how much of it to retrain, and which
tasks to learn together?", on the user's own data, written as a report folder."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..tasks import TaskSpec
from .affinity import feature_task_affinity
from .data_report import data_report
from .logme import logme
from .probe import probe

logger = logging.getLogger(__name__)

__all__ = ["advise", "backbone_factory", "parse_candidate", "score_backbone", "ModelFactory", "TRANSFER_HELPS_FROM"]

TRANSFER_HELPS_FROM = 0.05
"""Pretrained features 'help' when the probe's validation loss is at least this fraction below the random control's."""


def parse_candidate(text: str, default_weights: str = "pretrained") -> tuple[str, str]:
    """``name`` or ``name@weights`` (weights: pretrained, none, a packaged name or a file) → ``(name, weights)``."""
    name, _, weights = text.partition("@")
    if not name:
        raise ValueError(f"backbone candidate {text!r}: give a backbone name, optionally followed by @weights")
    return name, weights or default_weights


ModelFactory = Callable[[str, str], tuple[Any, Any]]
"""``(backbone name, weights) -> (MultiTaskModel with the tasks' heads, its processor)``; weights is ``pretrained``,
``none`` or what the factory understands (a file, a packaged name)."""


def backbone_factory(tasks: Sequence[TaskSpec | Mapping[str, Any]], *, pooling: str = "auto",
                     image_size: int | None = None) -> ModelFactory:
    """The default factory: `MultiTaskModel.from_backbone` (weights ``pretrained``, ``none`` or a weights file) and
    `build_processor`."""
    from ..modeling_mtl import MultiTaskModel
    from ..preprocessing import build_processor

    def build(name: str, weights: str) -> tuple[Any, Any]:
        loaded = {"pretrained": True, "none": False}.get(weights, weights)
        model = MultiTaskModel.from_backbone(name, tasks, weights=loaded, pooling=pooling)
        return model, build_processor(model, image_size=image_size)

    return build


def _features(build: ModelFactory, name: str, weights: str, raw: Any, specs: list[TaskSpec], input_column: str,
              label_columns: Mapping[str, str], cache_dir: str, batch_size: int, seed: int,
              allow_empty_text: bool = False):
    """Pooled features of the frozen backbone over ``raw`` (through the feature cache) and its size. Seeded, so a
    randomly initialised backbone is the same one on every run and its cached features are found again."""
    from ..data import MultiTaskDataCollator
    from ..preprocessing import dataset_transform
    from ..transfer.blocks import backbone_blocks
    from ..transfer.feature_cache import FEATURES_COLUMN, cache_features

    torch.manual_seed(seed)
    model, processor = build(name, weights)
    model.backbone.requires_grad_(False)
    dataset = raw.with_transform(dataset_transform(processor, input_column, train=False,
                                                   allow_empty_text=allow_empty_text))
    collator = MultiTaskDataCollator(specs, tokenizer=processor, label_columns=dict(label_columns))
    cached = cache_features(model, dataset, collator, batch_size=batch_size, cache_dir=cache_dir)
    features = torch.stack(list(cached[FEATURES_COLUMN])) if not isinstance(cached[FEATURES_COLUMN], torch.Tensor) \
        else cached[FEATURES_COLUMN]
    info = {"params": sum(p.numel() for p in model.backbone.parameters()), "blocks": len(backbone_blocks(model)),
            "num_features": int(features.shape[1])}
    return features.double(), info


def _logme_per_task(features: torch.Tensor, labels: dict[str, torch.Tensor], specs: list[TaskSpec]) -> dict[str, float]:
    return {spec.name: round(logme(features, labels[spec.name], spec), 6) for spec in specs}


def score_backbone(build: ModelFactory, name: str, weights: str, raw: Any, labels: dict[str, torch.Tensor],
                   specs: list[TaskSpec], cache_dir: str, *, input_column: str,
                   label_columns: Mapping[str, str] | None = None, batch_size: int = 64, seed: int = 0,
                   allow_empty_text: bool = False) -> tuple[dict[str, float], dict[str, Any]]:
    """LogME per task of one candidate (``build(name, weights)``) on the rows ``raw`` with encoded ``labels``; one
    pass of the frozen backbone through the feature cache."""
    features, info = _features(build, name, weights, raw, specs, input_column, label_columns or {}, cache_dir,
                               batch_size, seed, allow_empty_text)
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
    train_dataset: Any,
    tasks: Sequence[TaskSpec | Mapping[str, Any]],
    backbones: Sequence[str],
    *,
    output_dir: str | os.PathLike,
    input_column: str,
    label_columns: Mapping[str, str] | None = None,
    build_model: ModelFactory | None = None,
    max_samples: int | None = 2000,
    cache_dir: str | os.PathLike | None = None,
    allow_empty_text: bool = False,
    affinity_steps: int = 100,
    probe_steps: int = 300,
    batch_size: int = 64,
    seed: int = 0,
    plots: bool = True,
    source: str | None = None,
) -> dict[str, Any]:
    """Measure transferability (LogME per backbone and task), a heads-only probe against a random-init control, the
    label statistics and task affinity on ``train_dataset``; write ``advice.md``, ``advice.json`` and plots to
    ``output_dir``; return the advice as a dict. (`hf-mtl advise <recipe>` resolves a recipe into these arguments.)

    Args:
        train_dataset: a `datasets.Dataset` with the input column and one label column per task.
        tasks: task specs (dicts or [`TaskSpec`]).
        backbones: candidates as ``name`` or ``name@weights`` (weights: ``pretrained``, ``none`` or what
            ``build_model`` understands).
        output_dir: report folder.
        input_column: the image or text column.
        label_columns: task name -> column when they differ.
        build_model: ``(name, weights) -> (model, processor)``; default [`backbone_factory`]
            (`MultiTaskModel.from_backbone`).
        max_samples: training rows used (the first ones; None: all).
        cache_dir: feature cache folder (default: ``<output_dir>/feature_cache``).
        source: what the data came from (a recipe path), named in the report.
    """
    from tqdm.auto import tqdm

    from ..data import encode_labels
    from .report import write_report

    if not backbones:
        raise ValueError("advise: give at least one backbone candidate")
    started = time.perf_counter()
    specs = [TaskSpec.from_dict(dict(t) if isinstance(t, Mapping) else t) for t in tasks]
    label_columns = dict(label_columns or {})
    build = build_model or backbone_factory(specs)
    output_dir = os.fspath(output_dir)
    cache_dir = os.fspath(cache_dir or os.path.join(output_dir, "feature_cache"))
    candidates = [parse_candidate(c) for c in backbones]
    train_raw = train_dataset
    if max_samples is not None and len(train_raw) > max_samples:
        train_raw = train_raw.select(range(max_samples))
    missing = [label_columns.get(s.name, s.name) for s in specs
               if label_columns.get(s.name, s.name) not in train_raw.column_names]
    if missing:
        raise ValueError(f"advise: label column(s) {missing} not in the training data ({train_raw.column_names})")
    if input_column not in train_raw.column_names:
        raise ValueError(f"advise: input column {input_column!r} not in the training data ({train_raw.column_names})")
    rows = train_raw.select_columns([label_columns.get(s.name, s.name) for s in specs])
    labels = encode_labels(specs, rows.to_list(), label_columns, features=getattr(train_raw, "features", None))
    feature_args = {"input_column": input_column, "label_columns": label_columns, "cache_dir": cache_dir,
                    "batch_size": batch_size, "seed": seed, "allow_empty_text": allow_empty_text}
    timings: dict[str, float] = {}
    stages = len(candidates) + 3  # candidates, random control, probes, affinity
    bar = tqdm(total=stages, desc="advise", unit="stage")
    report: dict[str, Any] = {"recipe": source,
                              "num_samples": len(train_raw), "tasks": [s.to_dict() for s in specs]}
    report["data"] = data_report(specs, labels)
    features: dict[str, torch.Tensor] = {}
    infos: dict[str, dict] = {}
    scores: dict[str, dict[str, float]] = {}
    for name, weights in candidates:
        key = name if weights == "pretrained" or len(candidates) == 1 else f"{name}@{weights}"
        bar.set_postfix_str(f"features: {key}")
        t0 = time.perf_counter()
        features[key], infos[key] = _features(build, name, weights, train_raw, specs, **feature_args)
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
    control, _ = _features(build, best_name, "none", train_raw, specs, **feature_args)
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
