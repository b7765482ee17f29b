"""The launch helper of the multi-process tests (tests/multiprocess.py): its port reservation and its failure report."""

from __future__ import annotations

import socket

import pytest

from tests.multiprocess import accelerate_launch, requires_accelerate, reserve_port

FAILING_SCRIPT = """
import os, sys
print("rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"], flush=True)
if os.environ["RANK"] == "1":
    raise RuntimeError("rank one broke on purpose: 7f3a")
"""


def test_reserved_port_is_skipped_by_bind_zero_but_taken_with_reuseaddr():
    port = reserve_port()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # nobody else gets it by chance (kernel-chosen ports skip it too)
    with socket.socket() as server:  # torch's TCPStore binds with SO_REUSEADDR, as here
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)


@pytest.mark.slow
@requires_accelerate
def test_failed_launch_reports_the_failing_ranks_traceback(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(FAILING_SCRIPT)
    result = accelerate_launch([str(script)], tmp_path)
    assert result.returncode != 0
    assert "rank 1 stderr.log" in result.rank_logs, result.report()
    rank1 = result.rank_logs["rank 1 stderr.log"]
    assert "Traceback" in rank1 and "RuntimeError: rank one broke on purpose: 7f3a" in rank1
    report = result.report()
    assert report.index("--- rank 1 stderr.log") < report.index("rank one broke on purpose: 7f3a", report.index(
        "--- rank 1 stderr.log"))
    with pytest.raises(AssertionError, match="rank one broke on purpose"):
        result.check()
