"""A run killed part-way (kill -9 of the driver) and started again with the same command ends
with exactly the rows of an uninterrupted run: none lost, none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, write_jsonl

pytestmark = pytest.mark.slow


def _rows(out: Path) -> dict[str, list[tuple]]:
    found = {}
    for sub, key in (("traces", "id"), ("training/parquet", "id"), ("rejects", "id")):
        rows = [r for f in sorted((out / sub).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
        found[sub] = sorted((r[key], r.get("stage"), r.get("reason")) for r in rows)
    return found


def _command(source: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "run", "--input", str(source), "--output", str(out),
            "--actors", "2", "--timeout-s", "1", "--programs-per-block", "4"]


def test_a_killed_run_started_again_ends_with_the_rows_of_an_uninterrupted_run(tmp_path, dev_records):
    source = write_jsonl(tmp_path / "in.jsonl", dev_records[:60])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    whole = tmp_path / "whole"
    started = time.monotonic()
    subprocess.run(_command(source, whole), env=env, check=True, capture_output=True, cwd=ROOT)
    duration = time.monotonic() - started

    killed = tmp_path / "killed"
    driver = subprocess.Popen(_command(source, killed), env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(duration / 2)  # half-way: Ray is up and the trace actors are at work
    assert driver.poll() is None, "the run ended before it could be killed: give it more input"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not (killed / "manifest.json").exists()

    again = subprocess.run(_command(source, killed), env=env, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-2000:]
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["accounting_ok"]
    rows, expected = _rows(killed), _rows(whole)
    # every pair ends exactly once, as a training example or a reject, in both runs
    terminal = sorted(r[0] for r in rows["training/parquet"] + rows["rejects"])
    assert terminal == sorted(r[0] for r in expected["training/parquet"] + expected["rejects"])
    assert len(terminal) == len(set(terminal))
    # and, unless a run near the time limit went the other way, the very same rows
    timing = {"timeout", "timeout_streak"}
    if not timing & {r[2] for r in rows["rejects"] + expected["rejects"]}:
        assert rows == expected
