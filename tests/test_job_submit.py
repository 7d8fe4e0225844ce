"""Submitting the job to a Ray cluster with `ray job submit`, as a user would: a real head on
loopback, the project shipped as the working dir, the run's output checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT
from seaweed import free_port

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture
def ray_head():
    """`ray start --head` on 127.0.0.1 with its own ports and temp dir; stopped by killing only
    its own processes (`ray stop` would stop every Ray on the machine)."""
    temp = tempfile.mkdtemp(prefix="gt-ray-", dir="/tmp")  # unix socket paths must stay short
    port, dashboard = free_port(), free_port()
    # every port of its own: a default one still held by an earlier head breaks the job agent
    ports = [f"--{name}={free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port", "node-manager-port", "object-manager-port",
        "ray-client-server-port")]
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    started = subprocess.run(
        [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", "--num-cpus=6",
         "--include-dashboard=true", f"--temp-dir={temp}", "--disable-usage-stats", *ports],
        env=env, capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        for process in psutil.process_iter(["cmdline"]):
            try:
                if any(temp in part or f"--gcs_server_port={port}" in part
                       for part in process.info["cmdline"] or []):
                    process.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_runs_the_job_on_the_cluster(ray_head, tmp_path):
    address, env = ray_head
    out = tmp_path / "out"
    command = [RAY, "job", "submit", "--address", address, "--working-dir", str(ROOT),
               "--runtime-env-json", json.dumps({"excludes": [".venv", "out", ".git", ".pytest_cache",
                                                              ".ruff_cache", "*.egg-info"]}),
               "--", sys.executable, "-m", "jobs.cli", "run", "--input", "data/sample.jsonl",
               "--output", str(out), "--actors", "2"]
    deadline = time.monotonic() + 90
    while True:  # a new head's job agent takes a few seconds to come up
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
