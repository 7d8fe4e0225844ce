"""Object storage that fails for a while: the run ends with the rows of an uninterrupted run,
or, past the retry budget, stops with one line and an output that the same command finishes.

A fault-injecting proxy on loopback (tests/fault_proxy.py) stands in front of the real S3
server: it resets every connection, answers 503 SlowDown, or stalls, part-way through a run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from fault_proxy import FaultProxy

# one worker runs the module: its tests share a costly module fixture
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("storage_faults")]


def _env(s3: dict, endpoint: str) -> dict:
    env = {**os.environ, **{k: v for k, v in s3.items() if k.startswith("AWS_")},
           "PYTHONPATH": str(ROOT)}
    env["AWS_ENDPOINT_URL"] = endpoint
    return env


def _command(bucket: str, out: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "run", "--input", f"s3://{bucket}/faults-in/",
            "--output", f"s3://{bucket}/{out}", "--actors", "2", "--programs-per-block", "4",
            "--rows-per-shard", "10", "--progress-s", "0", *extra]


def _keys(s3: dict, prefix: str) -> list[str]:
    listed = s3["client"].list_objects_v2(Bucket=s3["BUCKET"], Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _rows(s3: dict, out: str) -> dict[str, list]:
    import io

    import pyarrow.parquet as pq

    found = {}
    for sub in ("traces", "training/parquet", "rejects"):
        rows = []
        for key in _keys(s3, f"{out}/{sub}/"):
            if key.endswith(".parquet"):
                body = s3["client"].get_object(Bucket=s3["BUCKET"], Key=key)["Body"].read()
                rows += pq.read_table(io.BytesIO(body)).to_pylist()
        found[sub] = sorted((r["id"], r.get("reason")) for r in rows)
    return found


def _wait_for(s3: dict, key_prefix: str, process: subprocess.Popen, limit_s: float = 120) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and not _keys(s3, key_prefix):
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.1)
    assert _keys(s3, key_prefix), f"nothing under {key_prefix}"


@pytest.fixture(scope="session")  # kept when xdist interleaves other modules
def clean(s3_server):
    """The input in the bucket, and the rows of a run that met no fault."""
    s3 = s3_server
    s3["client"].upload_file(str(ROOT / "data" / "sample.jsonl"), s3["BUCKET"], "faults-in/a.jsonl")
    run = subprocess.run(_command(s3["BUCKET"], "faults-clean"), env=_env(s3, s3["AWS_ENDPOINT_URL"]),
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return _rows(s3, "faults-clean")


@pytest.fixture
def proxy(s3_server):
    port = int(s3_server["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    faults = FaultProxy(port)
    yield faults
    faults.close()


def test_resets_and_slowdowns_part_way_end_with_the_rows_of_a_clean_run(s3_server, clean, proxy):
    s3 = s3_server
    run = subprocess.Popen(_command(s3["BUCKET"], "faults-outage"), env=_env(s3, proxy.url),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _wait_for(s3, "faults-outage/_ledger/part-", run)  # part-way: a first write committed
    proxy.set_mode("reset")  # every connection reset for 20 s (pyarrow alone gives up after ~6)
    time.sleep(20)
    proxy.set_mode("slowdown")
    time.sleep(5)
    proxy.set_mode("pass")
    _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-3000:]
    assert proxy.cuts > 0, "the faults met no request: cut earlier"
    manifest = json.loads(s3["client"].get_object(
        Bucket=s3["BUCKET"], Key="faults-outage/manifest.json")["Body"].read())
    assert manifest["accounting_ok"]
    assert _rows(s3, "faults-outage") == clean


def test_an_outage_longer_than_the_budget_stops_in_one_line_and_the_same_command_finishes(
        s3_server, clean, proxy):
    s3 = s3_server
    command = _command(s3["BUCKET"], "faults-long", "--storage-retry-s", "4")
    run = subprocess.Popen(command, env=_env(s3, proxy.url), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, cwd=ROOT)
    _wait_for(s3, "faults-long/_ledger/part-", run)
    proxy.set_mode("reset")  # and stays so
    try:
        _, stderr = run.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGKILL)
        raise
    assert run.returncode == 3, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("groundtrace: object storage unavailable:") and "resumes" in last
    assert "Traceback" not in stderr.split(last)[0][-2000:]
    proxy.set_mode("pass")
    again = subprocess.run(command, env=_env(s3, proxy.url), capture_output=True, text=True,
                           cwd=ROOT, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _rows(s3, "faults-long") == clean


def test_a_reader_cut_off_mid_file_reads_on_instead_of_losing_the_rest(s3_server, proxy, tmp_path):
    """An I/O error part-way through an input file is not damaged content: the file is opened
    again and read on from the record after the last one read."""
    from jobs.sources import iter_records

    lines = [json.dumps({"n": i, "pad": "x" * 200}) for i in range(20000)]  # ~4.5 MB
    s3_server["client"].put_object(Bucket=s3_server["BUCKET"], Key="faults-read/big.jsonl",
                                   Body=("\n".join(lines) + "\n").encode())
    env = _env(s3_server, proxy.url)
    saved = {k: os.environ.get(k) for k in env if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    try:
        records = []
        for number, (_where, text) in enumerate(
                iter_records(f"s3://{s3_server['BUCKET']}/faults-read/big.jsonl", retry_s=60)):
            records.append(json.loads(text)["n"])
            if number == 5000:
                proxy.set_mode("reset")
            elif number == 5001:
                time.sleep(3)
                proxy.set_mode("pass")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert proxy.cuts > 0, "the reset met no connection: the file was read before it"
    assert records == list(range(20000))


SIGTERM_WRITER = """
import signal, sys, time
import pyarrow as pa
from jobs.storage import ShardWriter

def stop(signum, frame):  # as Ray's workers do: SIGTERM raises through whatever runs
    raise SystemExit(143)

signal.signal(signal.SIGTERM, stop)
rows = 400_000
table = pa.table({"id": [f"row-{i:08d}" for i in range(rows)],
                  "text": [("x" * 64) + str(i) for i in range(rows)]})
print("ready", flush=True)
ShardWriter(sys.argv[1]).write("shard.parquet", table)
print("written", flush=True)
"""


@pytest.mark.parametrize("after_s", [0.0, 0.3, 1.0])
def test_a_worker_stopped_by_sigterm_mid_write_leaves_the_shard_whole_or_absent(s3_server, after_s):
    import io

    import pyarrow.parquet as pq

    s3 = s3_server
    prefix = f"sigterm-{after_s}"
    writer = subprocess.Popen([sys.executable, "-c", SIGTERM_WRITER, f"s3://{s3['BUCKET']}/{prefix}"],
                              env=_env(s3, s3["AWS_ENDPOINT_URL"]), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready"
    time.sleep(after_s)
    writer.send_signal(signal.SIGTERM)
    said, _ = writer.communicate(timeout=120)
    keys = _keys(s3, f"{prefix}/")
    if keys:  # the write got through before the signal: then all of it
        body = s3["client"].get_object(Bucket=s3["BUCKET"], Key=f"{prefix}/shard.parquet")["Body"].read()
        assert pq.read_table(io.BytesIO(body)).num_rows == 400_000
    else:
        assert "written" not in said
