"""The output lease: one driver at a time writes an output folder.

Interrupting a ``ray job submit`` client leaves its job running, and users then run the same
command again: two drivers on one output would each write every row (and one could delete the
other's uncommitted shards as orphans). A run therefore holds ``OUT/_ledger/lease.json`` (its
owner, host, pid and a heartbeat that a thread renews) from before it touches the output until
it ends. Another run on a live output is refused with one line that names the holder; a lease
whose heartbeat is older than ``--lease-timeout-s``, or whose holder is a process of this host
that no longer exists, is taken over.

Object stores have no compare-and-swap that pyarrow exposes: two drivers that start within
the same second could both write a lease; each reads it back after a pause and only the one
whose lease is there goes on.
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import threading
import time
import uuid

import pyarrow.fs as pafs

from jobs.storage import ShardWriter

LEASE_FILE = "_ledger/lease.json"
SETTLE_S = 1.0  # how long a new holder waits before it reads its lease back


class OutputBusy(RuntimeError):
    """Another live run holds the output folder."""


def _alive_here(lease: dict) -> bool:
    """False when the holder was a process of this host that has ended."""
    if lease.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(lease.get("pid", 0)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


class OutputLease:
    def __init__(self, writer: ShardWriter, timeout_s: float = 60.0, what: str = ""):
        self.writer, self.timeout_s, self.what = writer, timeout_s, what
        self.owner = uuid.uuid4().hex
        self.path = posixpath.join(writer.root, LEASE_FILE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def read(self) -> dict | None:
        try:
            if self.writer.fs.get_file_info(self.path).type != pafs.FileType.File:
                return None
            with self.writer.fs.open_input_stream(self.path) as handle:
                lease = json.loads(handle.read().decode())
        except (ValueError, OSError):
            return None  # a lease that does not parse holds nothing
        return lease if isinstance(lease, dict) else None

    def _write(self) -> None:
        self.writer.ensure_dir(posixpath.dirname(LEASE_FILE))
        self.writer.write_text(LEASE_FILE, json.dumps({
            "owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(),
            "heartbeat": time.time(), "what": self.what, "timeout_s": self.timeout_s}))

    def acquire(self) -> None:
        held = self.read()
        if held and held.get("owner") != self.owner:
            age = time.time() - float(held.get("heartbeat", 0))
            if age < self.timeout_s and _alive_here(held):
                raise OutputBusy(
                    f"{self.writer.root} is being written by another run ({held.get('what') or 'a job'}"
                    f" on {held.get('host')}, pid {held.get('pid')}, alive {age:.0f} s ago); "
                    f"wait for it, stop it, or start this one again once its lease is "
                    f"{self.timeout_s:.0f} s old")
        self._write()
        time.sleep(SETTLE_S)
        held = self.read()
        if not held or held.get("owner") != self.owner:
            raise OutputBusy(f"{self.writer.root}: another run took the output at the same time")
        self._thread = threading.Thread(target=self._beat, name="groundtrace-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(max(1.0, self.timeout_s / 6)):
            try:
                held = self.read()
                if held and held.get("owner") != self.owner:
                    self.lost = True  # taken over: this run's writes are no longer its own
                    return
                self._write()
            except Exception:  # noqa: BLE001 - the next beat tries again
                continue

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            held = self.read()
            if held and held.get("owner") == self.owner:
                self.writer.fs.delete_file(self.path)
        except OSError:
            pass  # a stale lease is taken over by the next run

    def __enter__(self) -> OutputLease:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
