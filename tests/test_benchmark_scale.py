"""Smoke test of `benchmarks/scale.py` part (d) (fresh worker processes) and its README rendering: the shape of the
report, never a timing."""

from __future__ import annotations

import argparse
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


def test_parts_not_run_keep_their_results_from_the_report_already_there(tmp_path):
    """`--parts a,b` must not erase part d's figures (and the README's table of them): the report keeps them, with
    the targets and settings of the run they come from."""
    (tmp_path / "scale.json").write_text(json.dumps({
        "command": "python benchmarks/scale.py --parts d", "date": "2026-12-01T00:00:00Z",
        "settings": {"quick": False, "label_rows": 7, "eval_rows": 9},
        "results": {"label_sizes": [1000], "labels": {"1000": {"validate_s": 1.0}}, "seconds_per_label": {}},
        "targets": [{"name": "validate_time_per_label_50k_over_1k"}, {"name": "other"}]}))
    args = argparse.Namespace(output_dir=str(tmp_path), quick=False, label_rows=500, eval_rows=200)
    results, targets = {"runs": {}}, [{"name": "streaming_peak_rss_growth_1x_to_16x"}]
    scale.keep_previous_parts(args, {"a", "b"}, results, targets)
    assert results["labels"] == {"1000": {"validate_s": 1.0}} and "runs" in results
    assert [t["name"] for t in targets] == ["streaming_peak_rss_growth_1x_to_16x", "validate_time_per_label_50k_over_1k"]
    assert (args.label_rows, args.eval_rows) == (7, 9)
    assert results["previous_parts"] == {"d": {"command": "python benchmarks/scale.py --parts d",
                                               "date": "2026-12-01T00:00:00Z"}}
    quick = argparse.Namespace(output_dir=str(tmp_path), quick=True, label_rows=5, eval_rows=5)
    results = {}
    scale.keep_previous_parts(quick, {"a", "b"}, results, [])  # a quick run does not mix with a full one
    assert results == {}
