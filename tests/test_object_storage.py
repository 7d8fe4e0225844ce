"""Object storage: the whole job reads from and writes to a real S3-compatible server
(SeaweedFS), with credentials and the endpoint taken from the standard environment."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from conftest import ROOT, assert_same_output, write_jsonl

pytestmark = pytest.mark.slow


def _groundtrace(s3: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **{k: v for k, v in s3.items() if k.startswith("AWS_")},
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def _keys(s3: dict, prefix: str) -> list[str]:
    listed = s3["client"].list_objects_v2(Bucket=s3["BUCKET"], Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def _read(s3: dict, key: str) -> bytes:
    return s3["client"].get_object(Bucket=s3["BUCKET"], Key=key)["Body"].read()


def test_a_run_from_a_bucket_into_a_bucket_then_translated_again_from_it(s3_server):
    s3, bucket = s3_server, s3_server["BUCKET"]
    s3["client"].upload_file(str(ROOT / "data" / "sample.jsonl"), bucket, "in/part-0.jsonl")
    s3["client"].upload_file(str(ROOT / "data" / "calls.jsonl"), bucket, "in/part-1.jsonl")

    run = _groundtrace(s3, "run", "--input", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out",
                       "--actors", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads(_read(s3, "out/manifest.json"))
    assert manifest["accounting_ok"] and manifest["counts"]["read"]["seen"] == 18 + 3
    keys = _keys(s3, "out/")
    assert "out/training/dataset_info.json" in keys
    assert not [k for k in keys if k.endswith(".tmp")]  # no partial shard was ever visible
    shards = [k for k in keys if k.startswith("out/training/parquet/") and k.endswith(".parquet")]
    examples = sum(pq.read_table(io.BytesIO(_read(s3, k))).num_rows for k in shards)
    assert examples == manifest["written"]["training"] > 0

    # the same run again finds it finished; another run into the same output is refused,
    # naming what differs; translate reads the run in the bucket
    same = _groundtrace(s3, "run", "--input", f"s3://{bucket}/in/", "--output", f"s3://{bucket}/out")
    assert same.returncode == 0 and "already holds this run, finished" in same.stdout
    assert json.loads(_read(s3, "out/manifest.json")) == manifest
    refused = _groundtrace(s3, "run", "--input", f"s3://{bucket}/in/", "--output",
                           f"s3://{bucket}/out", "--ios-per-program", "3")
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    assert "--ios-per-program 10 (now 3)" in refused.stderr
    again = _groundtrace(s3, "translate", "--input", f"s3://{bucket}/out", "--output",
                         f"s3://{bucket}/again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(_read(s3, "again/manifest.json"))["written"]["training"] == examples


def test_wrong_credentials_fail_with_a_clear_error_not_a_hang(s3_server):
    s3 = {**s3_server, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    result = _groundtrace(s3, "trace", "--input", f"s3://{s3['BUCKET']}/in/", "--output",
                          f"s3://{s3['BUCKET']}/nope")
    assert result.returncode == 2
    assert result.stderr.startswith("groundtrace: cannot list the input s3://")
    assert "not-the-secret" not in result.stderr


def _download(s3: dict, prefix: str, folder):
    for key in _keys(s3, prefix):
        if key.endswith("/"):  # a folder marker
            continue
        path = folder / key[len(prefix):]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_read(s3, key))
    return folder


def test_a_run_into_a_bucket_killed_part_way_resumes_with_each_row_once(s3_server, tmp_path,
                                                                         dev_records):
    s3, bucket = s3_server, s3_server["BUCKET"]
    source = write_jsonl(tmp_path / "in.jsonl", dev_records[60:100])
    s3["client"].upload_file(str(source), bucket, "killin/part-0.jsonl")
    args = ["run", "--input", f"s3://{bucket}/killin/", "--actors", "2", "--timeout-s", "1",
            "--programs-per-block", "4", "--rows-per-shard", "40", "--max-run-lines", "1000"]
    whole = _groundtrace(s3, *args, "--output", f"s3://{bucket}/whole")
    assert whole.returncode == 0, whole.stderr[-3000:]

    env = {**os.environ, **{k: v for k, v in s3.items() if k.startswith("AWS_")},
           "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-m", "jobs.cli", *args, "--output",
                               f"s3://{bucket}/killed"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_keys(s3, "killed/_ledger/part-")) < 2:
        time.sleep(0.05)
    assert driver.poll() is None, "the run ended before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert "killed/manifest.json" not in _keys(s3, "killed/")

    again = _groundtrace(s3, *args, "--output", f"s3://{bucket}/killed")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stdout
    manifest = json.loads(_read(s3, "killed/manifest.json"))
    assert manifest["accounting_ok"] and manifest["resume"]["blocks_kept"] > 0
    assert_same_output(_download(s3, "killed/", tmp_path / "killed"),
                       _download(s3, "whole/", tmp_path / "whole"))
