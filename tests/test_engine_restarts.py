"""An engine that keeps dying: the real vLLM engine (CPU, the tiny model) killed with SIGKILL
each time it comes up; past --max-engine-restarts the job stops with one line, and the same
command then finishes the output, every row accounted for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow
ENGINE = "vLLMEngineStage"


def _engine_pids(driver: int) -> list[int]:
    """The engine processes of this test's job (its driver's descendants): never another
    test's, run beside it."""
    try:
        below = psutil.Process(driver).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    pids = []
    for process in below:
        try:
            if ENGINE in " ".join(process.cmdline()):
                pids.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return pids


def test_an_engine_killed_past_the_bound_stops_the_job_in_one_line_and_it_resumes(tmp_path,
                                                                                  tiny_model):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "jobs.cli", "run", "--input", str(ROOT / "data" / "sample.jsonl"),
               "--output", str(out), "--model", tiny_model, "--device", "cpu", "--dtype", "bfloat16",
               "--enforce-eager", "--max-model-len", "2048", "--max-tokens", "8",
               "--min-new-tokens", "8", "--llm-batch-size", "4", "--max-engine-restarts", "1",
               "--progress-s", "0", "--actors", "1",
               "--revisions", "0"]  # one engine pool to kill (revisions: test_translate)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    killed: set[int] = set()
    deadline = time.monotonic() + 400
    while run.poll() is None and time.monotonic() < deadline and len(killed) < 3:
        for pid in _engine_pids(run.pid):
            if pid not in killed:
                os.kill(pid, signal.SIGKILL)  # the engine's process, as an OOM kill or a crash
                killed.add(pid)
        time.sleep(0.2)
    try:
        _, stderr = run.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        run.kill()
        raise AssertionError(run.communicate()[1][-3000:]) from None
    assert len(killed) >= 2, f"killed {len(killed)} engine processes"
    assert run.returncode == 3, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("groundtrace: the translating engine died more than --max-engine-restarts")
    again = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"] and manifest["resume"]["attempt"] == 2
