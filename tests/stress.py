"""Stress check of the tests that can flake: multi-process launches, kill/resume, the loopback Hub server.

Runs those tests ``--rounds`` times (one pytest run per round), then the whole suite ``--suite-runs`` times in a row,
while ``--hogs`` busy-loop processes load the CPU beside them, and prints pass counts and wall times (also written as
JSON). Exit status 0 only if everything passed every time. ``make test-stress`` runs it; e.g.::

    python tests/stress.py --rounds 3 --suite-runs 1     # a shorter check
    python tests/stress.py --only tests/test_distributed.py --rounds 20 --suite-runs 0
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STRESS_TESTS = [
    # multi-process (real `accelerate launch`)
    "tests/test_distributed.py",
    "tests/test_balancing_distributed.py",
    "tests/test_nonfinite.py::test_two_processes_skip_the_same_step",
    "tests/test_multiprocess_helper.py",
    "tests/test_stage_race.py",
    "tests/test_fsdp.py",
    "tests/test_multinode.py",
    "tests/test_feature_cache_scale.py",
    "tests/test_streaming.py::test_two_processes_stream_equal_one_process_with_twice_the_batch",
    # SIGKILL and resume
    "tests/test_faults.py",
    "tests/test_resume.py",
    # the loopback Hub server
    "tests/test_hub_server.py",
]


def _pytest(args: list[str], junit: Path, log: Path) -> tuple[int, float]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *args]
    start = time.monotonic()
    with log.open("w") as out:
        code = subprocess.call(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    return code, time.monotonic() - start


def _cases(junit: Path) -> dict[str, tuple[str, float]]:
    """``{test id: (outcome, seconds)}`` from a JUnit XML report (outcome: passed, failed, error or skipped)."""
    if not junit.exists():
        return {}
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        cases[name] = ("failed" if outcome == "failure" else outcome, float(case.get("time", 0)))
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="runs of the flaky-prone tests (default 10)")
    parser.add_argument("--suite-runs", type=int, default=2, help="whole-suite runs in a row afterwards (default 2)")
    parser.add_argument("--hogs", type=int, default=1, help="busy-loop processes loading the CPU (default 1)")
    parser.add_argument("--only", nargs="+", default=STRESS_TESTS, help="test ids to repeat (default: see STRESS_TESTS)")
    parser.add_argument("--out", type=Path, default=None, help="folder for logs and stress.json (default: a temp dir)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="hf_mtl-stress-"))
    out.mkdir(parents=True, exist_ok=True)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    print(f"stress: {args.rounds} rounds of {len(args.only)} test targets, then {args.suite_runs} suite run(s), "
          f"{args.hogs} CPU hog(s); logs in {out}", flush=True)
    outcomes: dict[str, list[str]] = defaultdict(list)
    seconds: dict[str, list[float]] = defaultdict(list)
    rounds, suites = [], []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped check still kills its hogs (finally, below)
    try:
        for i in range(1, args.rounds + 1):
            code, wall = _pytest(args.only, out / f"round{i}.xml", out / f"round{i}.log")
            for name, (outcome, secs) in _cases(out / f"round{i}.xml").items():
                outcomes[name].append(outcome)
                seconds[name].append(secs)
            rounds.append({"round": i, "exit": code, "wall_s": round(wall, 1)})
            print(f"round {i}/{args.rounds}: exit {code}, {wall:.0f} s", flush=True)
            _write(out, args, rounds, suites, outcomes, seconds)  # after every run: a cut-short check still reports
        for i in range(1, args.suite_runs + 1):
            code, wall = _pytest([], out / f"suite{i}.xml", out / f"suite{i}.log")
            counts = defaultdict(int)
            for outcome, _ in _cases(out / f"suite{i}.xml").values():
                counts[outcome] += 1
            suites.append({"run": i, "exit": code, "wall_s": round(wall, 1), **counts})
            print(f"suite run {i}/{args.suite_runs}: exit {code}, {dict(counts)}, {wall:.0f} s", flush=True)
            _write(out, args, rounds, suites, outcomes, seconds)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    report = _write(out, args, rounds, suites, outcomes, seconds)
    print("\npasses / runs   mean s   max s   test")
    for name, test in report["tests"].items():
        print(f"{test['passed']:>6} / {test['runs']:<4} {test['mean_s']:>8} {test['max_s']:>7}   {name}")
    print(f"\n{out / 'stress.json'}")
    ok = all(r["exit"] == 0 for r in rounds + suites) and all(
        set(t["outcomes"]) <= {"passed", "skipped"} for t in report["tests"].values())
    return 0 if ok else 1


def _write(out: Path, args: argparse.Namespace, rounds: list, suites: list, outcomes: dict, seconds: dict) -> dict:
    """Pass counts and wall times so far, as ``out/stress.json``."""
    tests = {}
    for name in sorted(outcomes):
        runs = outcomes[name]
        tests[name] = {"passed": runs.count("passed"), "runs": len(runs), "outcomes": runs,
                       "mean_s": round(sum(seconds[name]) / len(runs), 1), "max_s": round(max(seconds[name]), 1)}
    report = {"rounds": rounds, "suite_runs": suites, "tests": tests, "hogs": args.hogs, "cpus": os.cpu_count(),
              "planned": {"rounds": args.rounds, "suite_runs": args.suite_runs}}
    (out / "stress.json").write_text(json.dumps(report, indent=2))
    return report

if __name__ == "__main__":
    sys.exit(main())
