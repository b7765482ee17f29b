"""Smoke test of `benchmarks/scale.py` part (d) (fresh worker processes) and its README rendering: the shape of the
report, never a timing."""

from __future__ import annotations

import json

import pytest

from benchmarks import render_readme, scale
from tests.test_benchmarks import check_report


@pytest.mark.slow
def test_scale_labels_part_writes_report_and_renders(tmp_path):
    report = scale.main(["--quick", "--parts", "d", "--label-rows", "10", "--eval-rows", "10",
                         "--output-dir", str(tmp_path)])
    results = check_report(report, tmp_path, "scale")
    assert results["label_sizes"] == list(scale.LABEL_SIZES)
    for n in scale.LABEL_SIZES:
        row = results["labels"][str(n)]
        assert row["labels"] == n and row["validate_s"] > 0 and row["evaluate_s"] > 0 and row["peak_rss_mb"] > 0
    assert [t["name"] for t in report["targets"]] == ["validate_time_per_label_50k_over_1k",
                                                      "evaluate_time_per_label_50k_over_1k"]
    lines = render_readme.scale(json.loads((tmp_path / "scale.json").read_text()))
    assert any(line.startswith("| 50,000 |") for line in lines)
    assert "evaluation time per label" in render_readme.headline("scale", json.loads((tmp_path / "scale.json").read_text()))
