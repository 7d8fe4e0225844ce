"""The output lease on its own: a live holder keeps the output, a dead one gives it up."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from jobs.lease import LEASE_FILE, OutputBusy, OutputLease
from jobs.storage import ShardWriter


def _held_by(out, **lease) -> None:
    (out / "_ledger").mkdir(parents=True, exist_ok=True)
    (out / LEASE_FILE).write_text(json.dumps({"owner": "someone", "heartbeat": time.time(), **lease}))


def test_a_live_holder_on_another_host_keeps_the_output(tmp_path):
    _held_by(tmp_path, host="node-7", pid=1234, what="groundtrace run --input s3://b/in")
    with pytest.raises(OutputBusy, match="node-7, pid 1234"):
        OutputLease(ShardWriter(str(tmp_path)), timeout_s=60).acquire()


def test_a_lease_not_renewed_in_time_is_taken_over_and_released(tmp_path):
    _held_by(tmp_path, host="node-7", pid=1234, heartbeat=time.time() - 61)
    with OutputLease(ShardWriter(str(tmp_path)), timeout_s=60) as lease:
        assert json.loads((tmp_path / LEASE_FILE).read_text())["owner"] == lease.owner
    assert not (tmp_path / LEASE_FILE).exists()


def test_a_holder_of_this_host_that_is_gone_is_taken_over_at_once(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    _held_by(tmp_path, host=socket.gethostname(), pid=ended.pid)
    with OutputLease(ShardWriter(str(tmp_path)), timeout_s=60):
        pass


def test_a_lease_that_does_not_parse_holds_nothing(tmp_path):
    (tmp_path / "_ledger").mkdir()
    (tmp_path / LEASE_FILE).write_text('{"owner": "half a')
    with OutputLease(ShardWriter(str(tmp_path)), timeout_s=60):
        pass
