"""The plots written beside a model and shown in its card: what an evaluation says per task, drawn on a scale that
suits each metric, against what a trivial predictor would score.

* ``<split>_metrics.png``: one panel per task, its task-level metrics as bars with the chance / constant-predictor
  mark of each (`TaskType.metric_baselines`); bounded scores on their own range (`TaskType.metric_range`), errors in
  the targets' units (MAE / RMSE) in a panel of their own.
* ``<split>_per_label.png``: per task, the per-label (per-class) metrics of the card's table, chance marks included.
* ``<split>_<task>.png``: the task type's diagnostic (`TaskType.plot_kind`): a confusion matrix (multiclass, ordinal),
  a reliability diagram (binary, multilabel), predicted against true values (regression).
* ``training_curves.png``: per task, the training loss (``loss_<task>``) and the evaluation's main metric over steps,
  from the Trainer's log history (every stage of the run).

Which plot a task gets and the numbers on it come from its type in ``hf_mtl.tasks``; this module only draws.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .tasks import TaskSpec

PLOTS_DIR = "plots"
"""The folder (beside the model) that holds the plots; the card links them from there."""
CHART_FILENAME = f"{PLOTS_DIR}/eval_per_label.png"
"""The per-label chart of the training run's evaluation (``<split>_per_label.png`` with split ``eval``)."""
TRAINING_CURVES_FILENAME = f"{PLOTS_DIR}/training_curves.png"
CHART_SKIP_COLUMNS = ("support", "count")
"""Per-label table columns that are counts, not scores: tabled, not charted."""
MAX_LABELS_PER_PANEL = 30
"""A task with more labels shows its first ones (config order) in the per-label chart, and says so."""
MAX_RELIABILITY_CURVES = 6
"""Up to this many labels a reliability diagram draws a curve per label; beyond, only the pooled curve."""
MODEL_COLOUR, BASELINE_COLOUR = "#3b75af", "#222222"
METRIC_COLOURS = ("#3b75af", "#ef8636", "#519e3e", "#c53a32", "#8d69b8", "#84584e")
BASELINE_LABEL = "chance / constant predictor"
DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _baseline_mark(ax: Any, y: float, value: float, height: float, label: bool) -> None:
    ax.plot([value, value], [y - height / 2, y + height / 2], color=BASELINE_COLOUR, linewidth=2.2, solid_capstyle="butt",
            label=BASELINE_LABEL if label else None, zorder=3)


# ------------------------------------------------------------------------------------------------- per-label table
def _format_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"  # undefined on this eval set (e.g. no present label), never faked
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) > 1):
        return str(int(value))
    return f"{value:.4f}"


CARD_LABELS_PER_TASK = 40
"""Labels per task the card's table and chart show: a task with more (10,000 product tags) shows those with the most
present labels (support) and says how many more are in ``per_label_metrics.json``."""


def per_label_table(
    specs: Sequence[TaskSpec], per_label: Mapping[str, Mapping[str, Mapping[str, float]]] | None,
    max_labels: int | None = CARD_LABELS_PER_TASK,
) -> tuple[list[str], list[dict[str, Any]]]:
    """``{task: {label: {metric: value}}}`` → (metric columns, rows ``{task, label, cells, text}``) in config order.

    At most ``max_labels`` labels per task (by support); a task with more ends with a row that says how many more."""
    if not per_label:
        return [], []
    unknown = sorted(set(per_label) - {spec.name for spec in specs})
    if unknown:
        raise ValueError(f"per-label metrics for unknown tasks {unknown}; the model's tasks are {[s.name for s in specs]}")
    columns: list[str] = []
    seen: set[str] = set()
    for labels in per_label.values():
        for values in labels.values():
            for m in values:
                if m not in seen:
                    seen.add(m)
                    columns.append(m)
    rows = []
    for spec in specs:
        labels = per_label.get(spec.name) or {}
        configured = set(spec.label_names)  # (a list lookup per label would be quadratic)
        order = [name for name in spec.label_names if name in labels] + [n for n in labels if n not in configured]
        hidden = 0
        if max_labels is not None and len(order) > max_labels:
            shown = set(sorted(order, key=lambda name: -float(labels[name].get("support") or 0))[:max_labels])
            hidden, order = len(order) - max_labels, [name for name in order if name in shown]
        for label in order:
            values = labels[label]
            cells = [values.get(m) for m in columns]
            rows.append({"task": spec.name, "label": label, "cells": cells, "text": [_format_cell(v) for v in cells]})
        if hidden:
            rows.append({"task": spec.name, "label": f"(+{hidden} more labels: per_label_metrics.json)",
                         "cells": [None] * len(columns), "text": [""] * len(columns), "note": True, "hidden": hidden})
    return columns, rows


# ------------------------------------------------------------------------------------------------ task-level metrics
def metric_panels(specs: Sequence[TaskSpec], metrics: Mapping[str, Any],
                  baselines: Mapping[str, Mapping[str, float]] | None = None) -> list[dict[str, Any]]:
    """The panels of the metrics overview: per task, its bounded scores and (apart) its errors, each
    ``{task, type, range, rows: [(metric, value, baseline or None)]}``. ``metrics``: flat ``<task>_<metric>`` keys
    (an ``eval_`` / ``test_`` prefix is ignored)."""
    flat = {k.split("_", 1)[1] if k.startswith(("eval_", "test_")) else k: v for k, v in metrics.items()}
    panels = []
    for spec in specs:
        task_type, marks = spec.task_type, (baselines or {}).get(spec.name, {})
        scores: list[tuple[str, float, float | None]] = []
        errors: list[tuple[str, float, float | None]] = []
        low, high = 0.0, 1.0
        for metric in task_type.task_metric_names(spec):
            value = flat.get(f"{spec.name}_{metric}")
            if isinstance(value, (int, float)) and np.isfinite(value):
                metric_range = task_type.metric_range(metric.removeprefix("macro_").removeprefix("micro_"))
                (errors if metric_range is None else scores).append((metric, float(value), marks.get(metric)))
                if metric_range is not None:
                    low, high = min(low, metric_range[0]), max(high, metric_range[1])
        if scores:  # from 0 unless a value (a negative kappa) lies below
            shown = [v for _, v, _ in scores] + [b for _, _, b in scores if b is not None]
            panels.append({"task": spec.name, "type": spec.type, "rows": scores,
                           "range": (0.0 if min(shown) >= 0 else low, high)})
        if errors:
            panels.append({"task": spec.name, "type": spec.type, "range": None, "rows": errors})
    return panels


def plot_task_metrics(specs: Sequence[TaskSpec], metrics: Mapping[str, Any], path: str | os.PathLike,
                      baselines: Mapping[str, Mapping[str, float]] | None = None, title: str = "") -> Path | None:
    """One panel per task (errors apart from scores), bars with their values and the trivial predictor's mark."""
    panels = metric_panels(specs, metrics, baselines)
    if not panels:
        return None
    plt = _pyplot()
    heights = [0.55 + 0.32 * len(p["rows"]) for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.2, 0.9 + sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    marked = False
    for ax, panel in zip(axes[:, 0], panels):
        rows = panel["rows"]
        y = np.arange(len(rows))
        values = [value for _, value, _ in rows]
        ax.barh(y, values, height=0.6, color=MODEL_COLOUR, zorder=2)
        for i, (_, _value, baseline) in enumerate(rows):
            if baseline is not None:
                _baseline_mark(ax, i, baseline, 0.8, label=not marked)
                marked = True
        ax.set_yticks(y, [metric for metric, _, _ in rows])
        ax.invert_yaxis()
        if panel["range"] is not None:
            low, high = panel["range"]
            ax.set_xlim(low, high * 1.16)  # room for the value labels right of a full bar
            ax.set_xticks([t for t in np.linspace(low, high, 5 if low < 0 else 6)])
            kind = "score (higher is better)"
        else:
            top = max([*values, *[b for _, _, b in rows if b is not None]])
            ax.set_xlim(0, top * 1.25 if top > 0 else 1)
            kind = "error (lower is better)"
        span = ax.get_xlim()[1] - ax.get_xlim()[0]
        for i, (_, value, baseline) in enumerate(rows):  # right of the bar and of its mark
            right = max(value, 0.0, baseline if baseline is not None else 0.0)
            ax.text(right + 0.012 * span, i, f"{value:.3f}", va="center", fontsize=8, zorder=4)
        ax.set_title(f"{panel['task']} ({panel['type']}): {kind}", fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3, zorder=0)
        ax.tick_params(labelsize=8)
    note = f"black marks: {BASELINE_LABEL} on the same data" if marked else ""
    if title or note:
        fig.suptitle("\n".join(t for t in (title, note) if t), fontsize=9.5)
    fig.tight_layout()
    return _save(fig, path)


def _legend_entries(axes: Sequence[Any]) -> tuple[list[Any], list[str]]:
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


# ------------------------------------------------------------------------------------------------------- per label
def plot_per_label_metrics(specs: Sequence[TaskSpec], columns: Sequence[str], rows: Sequence[Mapping[str, Any]],
                           path: str | os.PathLike, chance: Mapping[str, Mapping[str, float]] | None = None,
                           title: str = "") -> Path | None:
    """Per task, grouped horizontal bars of each label's metrics (the card's per-label table, counts left out); a
    multilabel label's chance average precision (its share of positives) is marked. Errors (a multi-output
    regression's MAE / RMSE) get a panel of their own."""
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    hidden: dict[str, int] = {}
    for row in rows:
        if row.get("note"):  # "(+N more labels ...)" of a long label list is the table's, not a bar
            hidden[row["task"]] = row.get("hidden", 0)
        else:
            by_task.setdefault(row["task"], []).append(row)
    panels = []
    for spec in specs:
        task_rows = by_task.get(spec.name, [])
        if len(task_rows) < 2:  # one label (binary, one regression output): the task-level panel says it all
            continue
        groups: dict[Any, list[int]] = {}
        for i, metric in enumerate(columns):
            if metric in CHART_SKIP_COLUMNS or all(r["cells"][i] is None for r in task_rows):
                continue
            metric_range = spec.task_type.metric_range(metric)
            groups.setdefault(None if metric_range is None else (0.0, 1.0), []).append(i)
        for metric_range, indices in groups.items():
            panels.append((spec, metric_range, indices, task_rows[:MAX_LABELS_PER_PANEL],
                           len(task_rows) + hidden.get(spec.name, 0)))
    if not panels:
        return None
    plt = _pyplot()
    heights = [0.6 + 0.2 * len(shown) * max(1, len(indices)) ** 0.75 for _, _, indices, shown, _ in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.2, 1.0 + sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    charted = [m for m in columns if m not in CHART_SKIP_COLUMNS]
    for ax, (spec, metric_range, indices, shown, total) in zip(axes[:, 0], panels):
        y = np.arange(len(shown))
        height = 0.8 / len(indices)
        annotate = len(shown) * len(indices) <= 60
        top = metric_range[1] if metric_range is not None else max(
            [r["cells"][i] for r in shown for i in indices if r["cells"][i] is not None] or [1.0]) * 1.15
        for k, i in enumerate(indices):
            offset = (k - (len(indices) - 1) / 2) * height
            values = [r["cells"][i] if r["cells"][i] is not None else np.nan for r in shown]
            ax.barh(y + offset, values, height=height * 0.95, label=columns[i], zorder=2,
                    color=METRIC_COLOURS[charted.index(columns[i]) % len(METRIC_COLOURS)])
            marks = (chance or {}).get(spec.name) if columns[i] == "average_precision" else None
            for j, r in enumerate(shown):
                mark = (marks or {}).get(r["label"])
                if mark is not None:
                    _baseline_mark(ax, j + offset, mark, height, label=True)
                if annotate:
                    value = r["cells"][i]
                    text = "undefined" if value is None else f"{value:.2f}"
                    right = max(0.0 if value is None else value, mark or 0.0)
                    ax.text(right + 0.01 * top, j + offset, text, va="center", fontsize=6.5,
                            color="grey" if value is None else "black", zorder=4)
        ax.set_yticks(y, [_short(str(r["label"])) for r in shown])
        ax.invert_yaxis()
        ax.set_xlim(metric_range[0] if metric_range is not None else 0.0, top * (1.12 if annotate else 1.0))
        more = f" (first {len(shown)} of {total} labels)" if total > len(shown) else ""
        kind = "" if metric_range is not None else ": error (lower is better)"
        ax.set_title(f"{spec.name} ({spec.type}){kind}{more}", fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3, zorder=0)
        ax.tick_params(labelsize=8)
        handles, labels = _legend_entries([ax])
        ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7.5, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9.5)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------------------ diagnostics
def plot_confusion(spec: TaskSpec, inputs: Mapping[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """Rows: the true class, as shares of that class's samples (colour) with the counts written in."""
    plt = _pyplot()
    classes = list(inputs["classes"])
    k = len(classes)
    true, predicted = np.asarray(inputs["true"]), np.asarray(inputs["predicted"])
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (true, predicted), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(max(3.6, 0.45 * k + 2.2), 14)
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    names = [_short(c, 18) for c in classes]
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right" if
                  max(map(len, names)) > 3 else "center", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7 if k > 10 else 8,
                        color="white" if shares[i, j] > 0.55 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    accuracy = float(np.trace(counts) / max(counts.sum(), 1))
    majority = counts.sum(axis=1).max() / max(counts.sum(), 1)
    ax.set_title(title or f"{spec.name} ({spec.type}): confusion matrix\n{counts.sum()} samples, accuracy "
                 f"{accuracy:.3f} (most frequent class: {majority:.3f})", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins of predicted probability: mean prediction, observed positive share and count per bin, and
    the expected calibration error (count-weighted mean gap); present labels only."""
    p, y = np.asarray(probabilities, dtype=np.float64).ravel(), np.asarray(labels, dtype=np.float64).ravel()
    mask = ~np.isnan(y) & (y != -100)
    p, y = p[mask], y[mask]
    index = np.clip((p * bins).astype(int), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    mean_p = np.bincount(index, weights=p, minlength=bins) / np.maximum(count, 1)
    observed = np.bincount(index, weights=y, minlength=bins) / np.maximum(count, 1)
    ece = float(np.sum(count * np.abs(mean_p - observed)) / max(count.sum(), 1))
    return {"mean_predicted": mean_p, "observed": observed, "count": count, "ece": np.asarray(ece)}


def plot_reliability(spec: TaskSpec, inputs: Mapping[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """Observed share of positives against mean predicted probability per bin (on the diagonal: calibrated), per
    label (up to `MAX_RELIABILITY_CURVES`) and pooled, with the histogram of predictions beneath."""
    plt = _pyplot()
    probabilities, labels, names = inputs["probabilities"], inputs["labels"], list(inputs["names"])
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="calibrated")
    curves = [] if len(names) == 1 or len(names) > MAX_RELIABILITY_CURVES else list(range(len(names)))
    for j in curves:
        b = reliability_bins(probabilities[:, j], labels[:, j])
        keep = b["count"] > 0
        ax.plot(b["mean_predicted"][keep], b["observed"][keep], marker=".", linewidth=1, alpha=0.8,
                color=METRIC_COLOURS[(j + 1) % len(METRIC_COLOURS)], label=f"{_short(names[j], 20)} (ECE {float(b['ece']):.3f})")
    pooled = reliability_bins(probabilities, labels)
    keep = pooled["count"] > 0
    what = names[0] if len(names) == 1 else f"all {len(names)} labels"
    ax.plot(pooled["mean_predicted"][keep], pooled["observed"][keep], marker="o", linewidth=2.2, color=MODEL_COLOUR,
            label=f"{_short(what, 24)} (ECE {float(pooled['ece']):.3f})")
    present = labels[~np.isnan(labels) & (labels != -100)]
    if present.size:  # a constant predictor's one point lies on this line
        ax.axhline(float(present.mean()), color=BASELINE_COLOUR, linestyle=":", linewidth=1.2,
                   label=f"share of positives ({float(present.mean()):.2f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed share of positives")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", frameon=True, framealpha=0.85)
    ax.set_title(title or f"{spec.name} ({spec.type}): reliability, {int(pooled['count'].sum())} present labels",
                 fontsize=9)
    edges = np.linspace(0, 1, len(pooled["count"]) + 1)
    hist.bar(edges[:-1], pooled["count"], width=np.diff(edges), align="edge", color=MODEL_COLOUR, alpha=0.7,
             edgecolor="white")
    from matplotlib.ticker import MaxNLocator

    hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("count")
    hist.set_yscale("log" if pooled["count"].max() > 50 * max(np.median(pooled["count"][keep]), 1) else "linear")
    hist.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_predicted_vs_true(spec: TaskSpec, inputs: Mapping[str, Any], path: str | os.PathLike,
                           title: str = "") -> Path:
    """Per output: predicted against true values (on the diagonal: exact), with the constant predictor (the training
    median) as a horizontal line."""
    plt = _pyplot()
    true, predicted, names = inputs["true"], inputs["predicted"], list(inputs["names"])
    constant = inputs.get("constant")
    shown = list(range(min(len(names), 4)))
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown) + 0.4, 4.2), squeeze=False)
    for ax, j in zip(axes[0], shown):
        y, p = true[:, j], predicted[:, j]
        mask = ~np.isnan(y) & (y != -100)
        y, p = y[mask], p[mask]
        ax.scatter(y, p, s=10, alpha=0.5, color=MODEL_COLOUR, edgecolors="none", label="samples")
        if y.size:
            low, high = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
            pad = 0.05 * (high - low or 1.0)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], "--", color="grey", linewidth=1, label="exact")
            ax.set_xlim(low - pad, high + pad)
            ax.set_ylim(low - pad, high + pad)
            if constant is not None:
                ax.axhline(constant[j], color=BASELINE_COLOUR, linewidth=1.5, label="constant (training median)")
            mae = float(np.abs(y - p).mean())
            ax.set_title(f"{_short(names[j], 24)}: MAE {mae:.3g}, n = {y.size}", fontsize=9)
        ax.set_xlabel("true value")
        ax.set_ylabel("predicted value")
        ax.set_aspect("equal", adjustable="box")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper left", framealpha=0.85)
    more = f" (first {len(shown)} of {len(names)} outputs)" if len(names) > len(shown) else ""
    fig.suptitle(title or f"{spec.name} ({spec.type}): predicted vs true{more}", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


DIAGNOSTIC_PLOTS: dict[str, Callable[..., Path]] = {
    "confusion": plot_confusion,
    "reliability": plot_reliability,
    "predicted_vs_true": plot_predicted_vs_true,
}
"""`TaskType.plot_kind` → the function that draws it: ``(spec, TaskType.plot_inputs(...), path)``."""
PLOT_CAPTIONS = {"confusion": "confusion matrix", "reliability": "reliability diagram",
                 "predicted_vs_true": "predicted vs true values"}


# ------------------------------------------------------------------------------------------------ training curves
def training_curves(specs: Sequence[TaskSpec], histories: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
                    ) -> dict[str, Any]:
    """Per task, ``(step, loss)`` of ``loss_<task>`` and ``(step, value)`` of the eval main metric, over the stages
    in ``histories`` (``(stage name, Trainer.state.log_history)``) laid end to end; and the steps where stages start."""
    offset, starts = 0, []
    curves: dict[str, dict[str, list[tuple[int, float]]]] = {s.name: {"loss": [], "eval": []} for s in specs}
    for name, history in histories:
        starts.append((offset, name))
        last = 0
        for entry in history:
            step = int(entry.get("step", 0))
            last = max(last, step)
            for spec in specs:
                loss = entry.get(f"loss_{spec.name}")
                if isinstance(loss, (int, float)):
                    curves[spec.name]["loss"].append((offset + step, float(loss)))
                metric = entry.get(f"eval_{spec.name}_{spec.task_type.main_metric}")
                if isinstance(metric, (int, float)):
                    curves[spec.name]["eval"].append((offset + step, float(metric)))
        offset += last
    return {"curves": curves, "stages": starts}


def plot_training_curves(specs: Sequence[TaskSpec], histories: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
                         path: str | os.PathLike) -> Path | None:
    """One panel per task: its training loss (left axis) and its evaluation main metric (right axis) over steps."""
    data = training_curves(specs, histories)
    tasks = [s for s in specs if data["curves"][s.name]["loss"] or data["curves"][s.name]["eval"]]
    if not tasks:
        return None
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    columns = min(2, len(tasks))
    rows = (len(tasks) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.0 * rows + 0.5), squeeze=False)
    for ax in axes.ravel()[len(tasks):]:
        ax.set_visible(False)
    for ax, spec in zip(axes.ravel(), tasks):
        curve = data["curves"][spec.name]
        if curve["loss"]:
            steps, values = zip(*curve["loss"])
            ax.plot(steps, values, color=MODEL_COLOUR, linewidth=1.2, label=f"training loss_{spec.name}")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss", color=MODEL_COLOUR, fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.12 * (high - low))  # a band above the curves for the stage names
        if len(data["stages"]) > 1:
            for k, (start, stage) in enumerate(data["stages"]):
                if k:
                    ax.axvline(start, color="grey", linestyle=":", linewidth=1)
                ax.text(start, 0.98, f" {stage}", transform=ax.get_xaxis_transform(), fontsize=7, color="grey",
                        va="top")
        if curve["eval"]:
            twin = ax.twinx()
            steps, values = zip(*curve["eval"])
            metric = spec.task_type.main_metric
            twin.plot(steps, values, color=METRIC_COLOURS[1], marker="o", markersize=3, linewidth=1.2,
                      label=f"eval {metric}")
            twin.set_ylabel(f"eval {metric}", color=METRIC_COLOURS[1], fontsize=8)
            twin.tick_params(labelsize=8)
            metric_range = spec.task_type.metric_range(metric.removeprefix("macro_"))
            if metric_range is not None:  # a score on its whole range, an error from 0: no magnified wiggles
                twin.set_ylim(min(0.0 if min(values) >= 0 else metric_range[0], min(values)), metric_range[1] * 1.12)
            else:
                twin.set_ylim(0.0, max(values) * 1.25 if max(values) > 0 else 1.0)
        ax.set_title(f"{spec.name} ({spec.type})", fontsize=9, loc="left")
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------------------------- all plots
def evaluation_baselines(specs: Sequence[TaskSpec], labels: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per task, `TaskType.metric_baselines` on the evaluated labels."""
    return {s.name: s.task_type.metric_baselines(s, np.asarray(labels[s.name])) for s in specs if s.name in labels}


def write_plots(
    specs: Sequence[TaskSpec],
    folder: str | os.PathLike,
    *,
    evaluation: Any = None,
    metrics: Mapping[str, Any] | None = None,
    per_label: tuple[Sequence[str], Sequence[Mapping[str, Any]]] | None = None,
    histories: Sequence[tuple[str, Sequence[Mapping[str, Any]]]] | None = None,
    split: str = "eval",
    what: str = "",
) -> list[tuple[str, str]]:
    """Draw every plot the inputs allow into ``folder/plots/``; returns ``(caption, path relative to folder)``.

    ``evaluation``: a ``hf_mtl.metrics.Evaluation`` (metrics, per-label table, scores and labels); without it
    ``metrics`` (flat keys) and ``per_label`` (the card's ``(columns, rows)``) draw what they can, and no diagnostic.
    ``histories``: ``(stage, log_history)`` pairs for the training curves. ``what``: the evaluated data, in words,
    for the titles.
    """
    folder = Path(folder)
    out: list[tuple[str, str]] = []
    specs = list(specs)
    scores = getattr(evaluation, "scores", None) or {}
    labels = getattr(evaluation, "labels", None) or {}
    baselines = evaluation_baselines(specs, labels)
    flat = dict(metrics or {}) or dict(getattr(evaluation, "metrics", {}) or {})
    for spec in specs:  # without labels, the baselines the metrics carry (regression's constant predictor)
        for metric in spec.task_type.baseline_metric_names:
            value = flat.get(f"{spec.name}_{metric}", flat.get(f"eval_{spec.name}_{metric}"))
            if value is not None:
                baselines.setdefault(spec.name, {}).setdefault(metric.removeprefix("constant_"), float(value))
    where = f" on {what}" if what else ""

    def relative(path: Path | None, caption: str) -> None:
        if path is not None:
            out.append((caption, path.relative_to(folder).as_posix()))

    if flat:
        relative(plot_task_metrics(specs, flat, folder / PLOTS_DIR / f"{split}_metrics.png", baselines,
                                   title=f"Metrics per task{where}"), "Metrics per task")
    if per_label is None and evaluation is not None and getattr(evaluation, "per_label", None):
        per_label = per_label_table(specs, evaluation.per_label)
    if per_label and per_label[1]:
        chance = {s.name: s.task_type.chance_scores(s, _torch(labels[s.name])) for s in specs
                  if s.name in labels and s.task_type.chance_baseline is not None}
        relative(plot_per_label_metrics(specs, per_label[0], per_label[1], folder / PLOTS_DIR / f"{split}_per_label.png",
                                        chance, title=f"Per-label metrics{where}"), "Per-label metrics")
    for spec in specs:
        if spec.name not in scores or spec.name not in labels:
            continue
        task_type = spec.task_type
        inputs = task_type.plot_inputs(spec, scores[spec.name], labels[spec.name])
        draw = DIAGNOSTIC_PLOTS[task_type.plot_kind]
        caption = f"{spec.name}: {PLOT_CAPTIONS.get(task_type.plot_kind, task_type.plot_kind)}"
        relative(draw(spec, inputs, folder / PLOTS_DIR / f"{split}_{spec.name}.png"), caption)
    if histories:
        relative(plot_training_curves(specs, histories, folder / TRAINING_CURVES_FILENAME), "Training curves")
    return out


def _torch(values: Any) -> Any:
    import torch

    return torch.as_tensor(np.asarray(values, dtype=np.float32))


def write_evaluation_plots(specs: Sequence[TaskSpec], evaluation: Any, model: str | os.PathLike,
                           output_dir: str | os.PathLike, split: str = "eval", what: str = "") -> list[tuple[str, str]]:
    """``hf-mtl eval``'s plots of one split: into ``<model>/plots/`` when the model is a local folder (beside its
    ``eval_<split>_results.json``), else into ``output_dir``; returns ``(caption, path relative to that folder)``."""
    folder = Path(model) if os.path.isdir(model) else Path(output_dir)
    return write_plots(specs, folder, evaluation=evaluation, split=split, what=what)
