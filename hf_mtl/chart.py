"""The per-label metrics chart pushed beside the model card: one grouped horizontal bar per label."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

CHART_FILENAME = "per_label_metrics.png"
CHART_SKIP_COLUMNS = ("support",)
"""Per-label table columns that are counts, not scores in [0, 1]: tabled, not charted."""


def plot_per_label_metrics(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """A grouped horizontal bar chart of per-label metrics (one bar per metric), written as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    keep = [i for i, metric in enumerate(columns) if metric not in CHART_SKIP_COLUMNS]
    columns = [columns[i] for i in keep]
    rows = [{**row, "cells": [row["cells"][i] for i in keep]} for row in rows]
    names = [f"{row['task']} / {row['label']}" for row in rows]
    height = 0.8 / max(len(columns), 1)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.35 * len(rows) * max(1, len(columns)) ** 0.5))
    y = np.arange(len(rows))
    for i, metric in enumerate(columns):
        values = [row["cells"][i] if row["cells"][i] is not None else np.nan for row in rows]
        ax.barh(y + i * height, values, height=height, label=metric)
    ax.set_yticks(y + height * (len(columns) - 1) / 2, names)
    ax.invert_yaxis()
    ax.set_xlabel("value")
    ax.set_title("Per-label metrics (last evaluation)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
