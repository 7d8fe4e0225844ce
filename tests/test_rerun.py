"""The same command again, whatever happened to the first: a run stopped at any instant of its
end is finished by it (a finished run is not an error), a run of other flags is refused with
what differs named, and a Ray that `ray start --head` keeps on the machine (or the address file
a killed one left) changes nothing but the job's first line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, assert_same_output
from ray_head import ray_head

# one worker runs the module: its tests share a costly module fixture
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rerun")]
SAMPLE = ROOT / "data" / "sample.jsonl"


def _command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "run", "--input", str(SAMPLE), "--output", str(out),
            "--actors", "2", *extra]


def _run(out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_command(out, *extra), cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**(env or os.environ), "PYTHONPATH": str(ROOT)})


def _lines(done: subprocess.CompletedProcess) -> list[str]:
    """The job's own lines (Ray's log lines left out)."""
    return [line for line in (done.stdout + done.stderr).splitlines()
            if line.startswith(("groundtrace", "output:"))]


@pytest.fixture(scope="session")  # kept when xdist interleaves other modules
def first_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("rerun") / "whole"
    done = _run(out)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done


@pytest.fixture
def whole(first_run) -> Path:
    return first_run[0]


def _ledger_entries(out: Path) -> int:
    return len(list((out / "_ledger").glob("part-*.json"))) if (out / "_ledger").exists() else 0


def _stop_at(out: Path, instant: str, entries: int) -> None:
    """Start the run and SIGKILL it at ``instant``: once every shard is committed (before the
    manifest, when the poll is quick enough), the moment manifest.json appears (before the
    report), or a moment later (while the report is made)."""
    driver = subprocess.Popen(_command(out), cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            if instant == "last_shard" and _ledger_entries(out) >= entries:
                break
            if instant != "last_shard" and (out / "manifest.json").exists():
                if instant == "report":
                    time.sleep(0.15)
                break
            time.sleep(0.005)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()


@pytest.mark.parametrize("instant", ["last_shard", "manifest", "report"])
def test_a_run_stopped_at_its_end_is_finished_by_the_same_command(tmp_path, whole, instant):
    out = tmp_path / "stopped"
    _stop_at(out, instant, _ledger_entries(whole))
    had_manifest = (out / "manifest.json").exists()
    again = _run(out)
    assert again.returncode == 0, (again.stdout + again.stderr)[-2000:]
    assert (out / "manifest.json").exists() and (out / "report.html").exists()
    if had_manifest:
        assert any("already holds this run, finished" in line for line in _lines(again))
    assert_same_output(out, whole)
    assert json.loads((out / "manifest.json").read_text())["accounting_ok"]
    # and once more: still nothing to redo
    assert _run(out).returncode == 0
    assert_same_output(out, whole)


def test_a_finished_run_of_other_flags_is_refused_naming_what_differs(tmp_path, whole):
    out = tmp_path / "other"
    shutil.copytree(whole, out)  # a finished run (the folder holds all of it)
    assert _run(out).returncode == 0  # found finished: nothing to do
    refused = _run(out, "--ios-per-program", "3")
    assert refused.returncode == 2
    assert "--ios-per-program 10 (now 3)" in refused.stderr + refused.stdout
    assert "--overwrite" in refused.stderr + refused.stdout
    assert_same_output(out, whole)  # nothing thrown away


def test_a_running_ray_head_or_the_address_it_left_changes_nothing_but_the_first_line(tmp_path, whole):
    with ray_head(num_cpus=6, dashboard=False, tmpdir_env=True) as head:
        own = _run(tmp_path / "own", env=head.env)
        assert own.returncode == 0, own.stderr[-2000:]
        first = _lines(own)[0]
        assert first.startswith("groundtrace: starting a local Ray for this job")
        assert "already running on this machine" in first and "--address auto" in first
        assert_same_output(tmp_path / "own", whole)

        joined = _run(tmp_path / "joined", "--address", "auto", env=head.env)
        assert joined.returncode == 0, joined.stderr[-2000:]
        assert _lines(joined)[0] == "groundtrace: running on the Ray at auto"
        assert json.loads((tmp_path / "joined" / "manifest.json").read_text())["ray_address"] == "auto"
        assert_same_output(tmp_path / "joined", whole)

        head.kill()  # as a crash would: its address file stays behind
        assert (Path(head.temp) / "ray" / "ray_current_cluster").exists()
        after = _run(tmp_path / "after", env=head.env)
        assert after.returncode == 0, after.stderr[-2000:]
        assert _lines(after)[0].startswith("groundtrace: starting a local Ray for this job")
        assert "already running" not in _lines(after)[0]
        assert_same_output(tmp_path / "after", whole)
        gone = _run(tmp_path / "gone", "--address", "auto", env=head.env)
        assert gone.returncode == 2 and "no Ray is running on this machine" in gone.stderr
        assert "Traceback" not in gone.stderr


def test_the_job_says_which_ray_first_and_nothing_of_ray_token_auth(first_run):
    _, done = first_run
    assert "Token authentication" not in done.stdout + done.stderr
    assert _lines(done)[0].startswith("groundtrace: starting a local Ray for this job")
