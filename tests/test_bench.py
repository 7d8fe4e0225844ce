"""The trace benchmark's three modes run to the end on small sets and report what they ran.

They are not timed here (speed is measured by running the benchmark itself); these tests only
keep its modes from rotting as the zygote's protocol changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "trace_throughput.py"
SAMPLE = ROOT / "data" / "sample.jsonl"

# the dry run asks for the whole limit inside this comprehension (0.35 s of CPU time in);
# 20M iterations take 0.8 s here, far enough from both the 0.35 s and the 5 s limit on a busy
# machine (30M took over 5 s in CI)
LONG_COMPREHENSION = """\
def main_solution(n):
    residues = {i % 7 for i in range(n)}
    return len(residues)
"""
SHORT = """\
def main_solution(n):
    total = 0
    for i in range(n):
        total += i
    return total
"""


def _record(code: str, ios: list[tuple[int, int]]) -> str:
    return json.dumps({"problem_description": "p", "io_requirements": "r", "refcode": code,
                       "funcname": "main_solution",
                       "ios": [{"input": {"n": n}, "output": out} for n, out in ios]})


def _bench(*args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.alone  # a time limit raced: 20M items (0.8 s idle) passed 5 s beside 4 workers
def test_the_floor_counts_every_run_including_one_whose_dry_run_asks_for_more_time(tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text(_record(SHORT, [(3, 3), (10, 45)]) + "\n"
                   + _record(LONG_COMPREHENSION, [(20_000_000, 7)]) + "\n")
    printed = _bench("--dev", str(dev), "--floor", "--actors", "1")
    assert "floor: 3 runs" in printed
    assert "{'fits': 3}" in printed


def test_the_snoop_comparison_finds_the_samples_traces_identical():
    printed = _bench("--dev", str(SAMPLE), "--compare-snoop")
    runs = int(printed.split("fast_snoop vs snoop: ")[1].split(" runs")[0])
    assert runs > 20
    assert f"{runs} runs, {runs} traces identical, differing: []" in printed


@pytest.mark.alone  # twice the runs of the set twice: a timeout on a busy machine flips one
def test_the_throughput_benchmark_reports_the_reference_every_run_and_the_repeated_set():
    printed = _bench("--dev", str(SAMPLE), "--reference-runs", "3", "--repeat", "2",
                     "--actors", "1")
    report = json.loads(printed[printed.index("\n{") + 1:])
    assert report["reference"]["runs"] == 3
    assert sum(report["reference"]["statuses"].values()) == 3
    for job in ("trace_all", "default_x1", "default_x2"):
        assert report[job]["accounting_ok"] is True
        assert report[job]["runs"] > 0
    assert report["trace_all"]["runs"] >= report["default_x1"]["runs"]
    assert report["default_x2"]["runs"] == 2 * report["default_x1"]["runs"]
