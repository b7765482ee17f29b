"""The README's Quickstart is code users copy: run it as they would, in a fresh interpreter."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.multiprocess import TIMEOUT

pytestmark = pytest.mark.slow  # each runs a README section in a fresh interpreter

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(heading: str) -> str:
    text = README.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"README section {heading!r} has no python block"
    return "\n".join(blocks)


def test_quickstart_runs_and_learns(tmp_path):
    code = _section_code("Quickstart")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics_line = next(line for line in result.stdout.splitlines() if "eval_sentiment_accuracy" in line)
    metrics = ast.literal_eval(metrics_line)  # the dict the snippet printed
    assert metrics["eval_topics_macro_roc_auc"] > 0.8 and metrics["eval_sentiment_accuracy"] > 0.6
    assert (tmp_path / "out/quickstart/model/model.safetensors").is_file()
    assert "'topics': {'labels'" in result.stdout and "'stars': {'value'" in result.stdout


def test_reliability_example_runs(tmp_path):
    code = _section_code("Reliability and security")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "train_dataset: task 'tags', column 'tags', row 0: label value 2" in out
    assert "skipped steps: 1 all weights finite: True" in out
    assert "backbone_kwargs['checkpoint_path'] is refused" in out
    assert "non-finite values (NaN/inf) at optimizer step" in result.stderr  # the warning names the step
