"""The advice report folder: ``advice.json`` (every number), ``advice.md`` (the verdicts in plain words, each with the
numbers behind it) and plots (LogME per backbone and task, the probe comparison, the task-affinity heatmap)."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["headline_metric", "render_markdown", "write_report"]

PLOTS = {"logme": "logme.png", "probe": "probe.png", "affinity": "affinity.png"}


def headline_metric(metrics: dict[str, float], metric_names: list[str] | tuple[str, ...]) -> tuple[str, float] | None:
    """The task type's first metric (its macro average when there is one), as the probe table shows it."""
    for name in metric_names:
        for key in (f"macro_{name}", name):
            if key in metrics:
                return key, metrics[key]
    return None


def _groups_text(groups: list[list[str]]) -> str:
    return " | ".join("{" + ", ".join(g) + "}" for g in groups)


def render_markdown(report: dict[str, Any]) -> str:
    from ..tasks import TaskSpec

    specs = [TaskSpec.from_dict(t) for t in report["tasks"]]
    data, best, freeze = report["data"], report["recommended_backbone"], report["freeze"]
    lines = ["# hf-mtl advice", ""]
    if report.get("recipe"):
        lines.append(f"Recipe `{report['recipe']}`, {report['num_samples']} training rows.")
        lines.append("")
    lines += ["## Verdicts", ""]
    ranked = sorted(report["backbones"].items(), key=lambda kv: -kv[1]["mean_logme"])
    if len(ranked) > 1:
        runner_up = ranked[1]
        lines.append(
            f"- **Backbone: `{best['name']}` (weights `{best['weights']}`)**: the highest mean LogME over the tasks, "
            f"{best['mean_logme']:.4f} (next: `{runner_up[0]}` {runner_up[1]['mean_logme']:.4f}). LogME is the "
            "log evidence per sample of a linear model on the frozen features: higher transfers better."
        )
    else:
        lines.append(f"- **Backbone: `{best['name']}` (weights `{best['weights']}`)**: the only candidate, mean LogME "
                     f"{best['mean_logme']:.4f} (give `--backbones` to compare several).")
    control = report["random_init_control"]["logme"]
    mean_control = sum(control.values()) / len(control)
    lines.append(
        f"- **Transfer: {'yes' if freeze['transfer_helps'] else 'little gain'}**: a heads-only probe on the pretrained "
        f"features has {freeze['mean_probe_loss_reduction']:.1%} lower validation loss (mean over tasks) than on the same "
        f"backbone randomly initialised; LogME {best['mean_logme']:.4f} pretrained vs {mean_control:.4f} random-init."
    )
    lines.append(f"- **Freeze policy: `{freeze['policy']}`**: {freeze['reason']}.")
    affinity = report.get("affinity")
    if affinity:
        together = [g for g in affinity["groups"] if len(g) > 1]
        verdict = ("train all tasks in one model" if len(affinity["groups"]) == 1 else
                   "train these groups as separate models: " + _groups_text(affinity["groups"]))
        lines.append(
            f"- **Task grouping: {verdict}**: the grouping with the largest summed lookahead affinity inside groups "
            f"({affinity['grouping_score']:.4f}, {affinity['steps']} steps of a short joint run)"
            + ("." if together or len(affinity["groups"]) == 1 else "; no pair of tasks helped each other.")
        )
    else:
        lines.append("- **Task grouping**: one task, nothing to group.")
    lines.append(
        f"- **Data balance**: labelled rows per task range {data['labelled_max_over_min']:.2f}x "
        f"(Gini {data['labelled_gini']:.3f}; 0 = equal). "
        + ("Strongly unequal: consider `task_sampling` temperature or loss weights." if data['labelled_max_over_min'] > 5
           else "Balanced enough for plain joint training.")
    )
    lines += ["", "## LogME per backbone and task", "",
              "| backbone | " + " | ".join(s.name for s in specs) + " | mean |",
              "|---|" + "---:|" * (len(specs) + 1)]
    for key, entry in ranked:
        lines.append(f"| `{key}` | " + " | ".join(f"{entry['logme'][s.name]:.4f}" for s in specs)
                     + f" | {entry['mean_logme']:.4f} |")
    lines.append(f"| `{report['random_init_control']['backbone']}` random init | "
                 + " | ".join(f"{control[s.name]:.4f}" for s in specs) + f" | {mean_control:.4f} |")
    probe = report["probe"]
    lines += ["", f"## Heads-only probe of `{probe['backbone']}` ({probe['pretrained']['train_rows']} train / "
              f"{probe['pretrained']['validation_rows']} validation rows)", "",
              "| task | metric | pretrained | random init | val loss pretrained | val loss random init |",
              "|---|---|---:|---:|---:|---:|"]
    for spec in specs:
        pre, rnd = probe["pretrained"], probe["random_init"]
        head = headline_metric(pre["metrics"][spec.name], spec.task_type.metric_names)
        name, value = head if head else ("-", float("nan"))
        other = rnd["metrics"][spec.name].get(name, float("nan"))
        lines.append(f"| {spec.name} | {name} | {value:.4f} | {other:.4f} | {pre['val_loss'][spec.name]:.4f} | "
                     f"{rnd['val_loss'][spec.name]:.4f} |")
    if affinity:
        names = affinity["tasks"]
        lines += ["", "## Task affinity (row: the task stepped on; column: the task whose loss changed)", "",
                  "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for name, row in zip(names, affinity["matrix"]):
            lines.append(f"| {name} | " + " | ".join(f"{v:+.4f}" for v in row) + " |")
    lines += ["", "## Labelled data", "", "| task | type | labelled rows | missing share |", "|---|---|---:|---:|"]
    for name, entry in data["tasks"].items():
        lines.append(f"| {name} | {entry['type']} | {entry['labelled_samples']} | {entry['missing_share']:.1%} |")
    lines += ["", "Per-label counts and means (prevalence of 0/1 labels) are in `advice.json`.", ""]
    timings = report.get("timings_s", {})
    if "total" in timings:
        lines += [f"Measured in {timings['total']:.1f} s.", ""]
    lines += [f"![{os.path.splitext(path)[0]}]({path})" for path in report.get("plots", [])]
    return "\n".join(lines)


def _plots(report: dict[str, Any], output_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written = []
    tasks = [t["name"] for t in report["tasks"]]
    rows = {**{k: v["logme"] for k, v in report["backbones"].items()},
            f"{report['random_init_control']['backbone']} (random init)": report["random_init_control"]["logme"]}
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(tasks) * max(1, len(rows)) / 2), 3.6))
    width = 0.8 / len(rows)
    for k, (name, values) in enumerate(rows.items()):
        ax.bar(np.arange(len(tasks)) + k * width - 0.4 + width / 2, [values[t] for t in tasks], width, label=name)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel("LogME (higher: transfers better)")
    ax.set_title("LogME per backbone and task")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, PLOTS["logme"]), dpi=110)
    plt.close(fig)
    written.append(PLOTS["logme"])

    probe = report["probe"]
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(tasks)), 3.4))
    for k, (side, label) in enumerate((("pretrained", "pretrained"), ("random_init", "random init"))):
        ax.bar(np.arange(len(tasks)) + (k - 0.5) * 0.38, [probe[side]["val_loss"][t] for t in tasks], 0.38, label=label)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel("probe validation loss (lower: better)")
    ax.set_title(f"Heads-only probe: {probe['backbone']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, PLOTS["probe"]), dpi=110)
    plt.close(fig)
    written.append(PLOTS["probe"])

    affinity = report.get("affinity")
    if affinity:
        z = np.asarray(affinity["matrix"])
        # the colours show how tasks affect each other; a task's effect on itself (the diagonal) is grey
        off = np.where(np.eye(len(z), dtype=bool), np.nan, z)
        bound = max(float(np.nanmax(np.abs(off))) if len(z) > 1 else 0.0, 1e-9)
        fig, ax = plt.subplots(figsize=(1.1 * len(tasks) + 2.2, 1.0 * len(tasks) + 1.4))
        cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#dddddd")
        image = ax.imshow(off, cmap=cmap, vmin=-bound, vmax=bound)
        ax.set_xticks(range(len(tasks)), affinity["tasks"], rotation=30, ha="right")
        ax.set_yticks(range(len(tasks)), affinity["tasks"])
        ax.set_xlabel("task whose loss changed")
        ax.set_ylabel("lookahead step on")
        for i in range(len(tasks)):
            for j in range(len(tasks)):
                ax.text(j, i, f"{z[i, j]:+.3f}", ha="center", va="center", fontsize=8)
        ax.set_title("Task affinity: 1 - L_j(after step on i) / L_j", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
        fig.tight_layout()
        fig.savefig(os.path.join(output_dir, PLOTS["affinity"]), dpi=110)
        plt.close(fig)
        written.append(PLOTS["affinity"])
    return written


def write_report(report: dict[str, Any], output_dir: str | os.PathLike, plots: bool = True) -> None:
    """Write ``advice.json``, the plots and ``advice.md`` into ``output_dir``."""
    output_dir = os.fspath(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    report["plots"] = _plots(report, output_dir) if plots else []
    with open(os.path.join(output_dir, "advice.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    markdown = render_markdown(report)
    with open(os.path.join(output_dir, "advice.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown)
