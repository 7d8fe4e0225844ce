"""A run killed part-way (kill -9 of the driver) and started again with the same command ends
with exactly the rows of an uninterrupted run: none lost, none twice. What the killed run had
committed is kept, not done again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TIMING, assert_same_output, write_jsonl

# one worker runs the module: its tests share a costly module fixture
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("kill")]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# every command below has a run budget of 1,000 lines: the faults are what is tested here (long
# runs are resumed in test_resume), and it spares each of the module's seven runs a quarter of
# its CPU


def _command(source: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "run", "--input", str(source), "--output", str(out),
            "--actors", "2", "--timeout-s", "1", "--programs-per-block", "4",
            "--rows-per-shard", "40", "--max-run-lines", "1000"]


def _committed(out: Path) -> int:
    return len(list((out / "_ledger").glob("part-*.json"))) if (out / "_ledger").exists() else 0


@pytest.fixture(scope="session")  # kept when xdist interleaves other modules
def uninterrupted(tmp_path_factory, dev_records):
    folder = tmp_path_factory.mktemp("kill")
    source = write_jsonl(folder / "in.jsonl", dev_records[:60])
    whole = folder / "whole"
    started = time.monotonic()
    subprocess.run(_command(source, whole), env=ENV, check=True, capture_output=True, cwd=ROOT)
    return source, whole, time.monotonic() - started


def _kill_and_rerun(source: Path, out: Path, when) -> dict:
    driver = subprocess.Popen(_command(source, out), env=ENV, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    when(driver)
    assert driver.poll() is None, "the run ended before it could be killed: give it more input"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not (out / "manifest.json").exists()
    again = subprocess.run(_command(source, out), env=ENV, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"], manifest["checks"]
    return manifest


def test_a_run_killed_before_its_first_commit_starts_over_and_ends_whole(tmp_path, uninterrupted):
    source, whole, duration = uninterrupted
    out = tmp_path / "killed"

    def early(driver):  # Ray is up and the trace actors are at work, nothing committed yet
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and not (out / "_ledger" / "run.json").exists():
            time.sleep(0.05)
        time.sleep(1.0)
        assert _committed(out) == 0, "killed too late for this test"

    manifest = _kill_and_rerun(source, out, early)
    assert manifest["resume"]["blocks_kept"] == 0
    assert_same_output(out, whole)


def test_a_run_killed_after_some_commits_keeps_them_and_does_only_the_rest(tmp_path, uninterrupted):
    source, whole, duration = uninterrupted
    out = tmp_path / "killed"

    def after_first_commits(driver):
        deadline = time.monotonic() + 2 * duration
        while time.monotonic() < deadline and _committed(out) < 2:
            time.sleep(0.02)
        assert _committed(out) >= 2

    manifest = _kill_and_rerun(source, out, after_first_commits)
    assert manifest["resume"]["attempt"] == 2
    assert manifest["resume"]["blocks_kept"] > 0, manifest["resume"]
    # a program near the sandbox's time limit may time out in one run and reach the run budget
    # in the other: the counts then differ by those reasons alone
    theirs = json.loads((whole / "manifest.json").read_text())["counts"]
    assert manifest["counts"] == theirs or TIMING & (
        set(manifest["counts"]["trace"]["reasons"]) | set(theirs["trace"]["reasons"]))
    assert_same_output(out, whole)
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


def test_a_second_run_on_a_live_output_is_refused_and_the_first_ends_whole(tmp_path, uninterrupted):
    """Interrupting a `ray job submit` client leaves its job running; the same command run
    again must not write every row a second time."""
    source, whole, duration = uninterrupted
    out = tmp_path / "busy"
    first = subprocess.Popen(_command(source, out), env=ENV, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline and not (out / "_ledger" / "run.json").exists():
        time.sleep(0.05)
    second = subprocess.run(_command(source, out), env=ENV, capture_output=True, text=True, cwd=ROOT)
    assert first.poll() is None, "the first run ended before the second started: give it more input"
    assert second.returncode == 2
    said = second.stderr.strip().splitlines()
    assert len(said) == 1 and "being written by another run" in said[0] and str(first.pid) in said[0]
    assert first.wait(timeout=600) == 0
    assert json.loads((out / "manifest.json").read_text())["accounting_ok"]
    assert_same_output(out, whole)
    assert not (out / "_ledger" / "lease.json").exists()  # released at the end
