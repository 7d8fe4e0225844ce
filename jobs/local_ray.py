"""Which Ray a job runs on, decided on purpose and said in the job's first line.

Without ``--address`` (or ``RAY_ADDRESS``) a job starts a Ray of its own for its run, even when
``ray start --head`` keeps one on this machine: ``ray.init()`` would otherwise join that one
(and refuse the job's CPU count), or, when it was killed, follow the address it left behind in
Ray's temp folder to nothing. ``--address auto`` joins the running one.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

# Ray's own start-up notices that tell a user nothing about their job (its token-auth default
# for a new local cluster); Ray's warnings that matter still reach the console
QUIET_LOGGERS = ("ray._private.authentication.authentication_token_setup",)


def address_file() -> Path:
    """Where ``ray start`` leaves the address of the head it started (Ray's temp folder)."""
    try:
        from ray._common.utils import get_ray_address_file

        return Path(get_ray_address_file(None))
    except (ImportError, AttributeError, TypeError):  # another Ray version's layout
        base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
        return Path(base) / "ray" / "ray_current_cluster"


def running_ray(timeout_s: float = 0.5) -> str | None:
    """The address of the Ray that ``ray start`` left on this machine, when something still
    answers there; None when there is none, or only the file a killed head left behind."""
    try:
        address = address_file().read_text().strip()
    except OSError:
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return address
    except (OSError, ValueError):
        return None


def quiet_start_up() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def local_ray_line(cpus: int) -> str:
    """The job's first line when it starts its own Ray."""
    running = running_ray()
    line = f"groundtrace: starting a local Ray for this job ({cpus} logical CPUs)"
    if running:
        line += (f"; the Ray already running on this machine ({running}) is left alone "
                 "(--address auto runs the job there)")
    return line
