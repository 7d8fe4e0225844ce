"""`ray start --head` on 127.0.0.1 for a test: its own ports and temp folder, stopped by killing
only its own processes (`ray stop` would stop every Ray on the machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from seaweed import free_port

RAY = str(Path(sys.executable).parent / "ray")


@dataclass
class Head:
    port: int
    dashboard: int
    temp: str  # its temp folder; with tmpdir_env, Ray's temp root (RAY_TMPDIR)
    env: dict

    def kill(self) -> None:
        """Kill its processes, as a crash or a closed session would: the address file stays."""
        for process in psutil.process_iter(["cmdline"]):
            try:
                if any(self.temp in part or f"--gcs_server_port={self.port}" in part
                       for part in process.info["cmdline"] or []):
                    process.kill()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass


@contextmanager
def ray_head(num_cpus: int = 6, dashboard: bool = True, tmpdir_env: bool = False) -> Iterator[Head]:
    """A head for the block. ``tmpdir_env``: its temp folder given as RAY_TMPDIR (in
    ``Head.env``), so that it leaves its address where a local `ray.init()` of a process with
    that env looks (as a plain `ray start --head` does in /tmp/ray); else as --temp-dir."""
    temp = tempfile.mkdtemp(prefix="gt-ray-", dir="/tmp")  # unix socket paths must stay short
    port, dashboard_port = free_port(), free_port()
    # every port of its own: a default one still held by an earlier head breaks the job agent
    ports = [f"--{name}={free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port", "node-manager-port", "object-manager-port",
        "ray-client-server-port")]
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    where = []
    if tmpdir_env:
        env["RAY_TMPDIR"] = temp
    else:
        where = [f"--temp-dir={temp}"]
    head = Head(port, dashboard_port, temp, env)
    started = subprocess.run(
        [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
         f"--num-cpus={num_cpus}", f"--include-dashboard={str(dashboard).lower()}", *where,
         "--disable-usage-stats", *ports],
        env=env, capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        yield head
    finally:
        head.kill()
        shutil.rmtree(temp, ignore_errors=True)
