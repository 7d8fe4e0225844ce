"""Submitting the job to a Ray cluster with `ray job submit`, as a user would: a real head on
loopback, the project shipped as the working dir, the run's output checked."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from ray_head import RAY
from ray_head import ray_head as start_head

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_head():
    """`ray start --head` on 127.0.0.1 with its own ports and temp dir (tests/ray_head.py)."""
    with start_head() as head:
        yield f"http://127.0.0.1:{head.dashboard}", head.env


def test_ray_job_submit_runs_the_job_on_the_cluster(ray_head, tmp_path):
    address, env = ray_head
    out = tmp_path / "out"
    command = [RAY, "job", "submit", "--address", address, "--working-dir", str(ROOT),
               "--runtime-env-json", json.dumps({"excludes": [".venv", "out", ".git", ".pytest_cache",
                                                              ".ruff_cache", "*.egg-info"]}),
               "--", sys.executable, "-m", "jobs.cli", "run", "--input", "data/sample.jsonl",
               "--output", str(out), "--actors", "2"]
    deadline = time.monotonic() + 300
    while True:  # a new head's job agent takes seconds to come up, minutes on a busy machine
        submitted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if "No available agent" not in submitted.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert submitted.returncode == 0, (submitted.stdout + submitted.stderr)[-3000:]
    assert "succeeded" in submitted.stdout + submitted.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"] and manifest["written"]["training"] > 0
    # the driver joined the cluster (the job's RAY_ADDRESS), it did not start a Ray of its own
    assert manifest["ray_address"] != "local"
