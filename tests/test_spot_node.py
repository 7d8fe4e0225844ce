"""A spot node lost mid-run: on a real multi-node Ray cluster (three raylets on this machine),
a worker node removed half-way without warning; the job finishes with exactly the rows of an
uninterrupted run, none twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, assert_same_output, write_jsonl

# one worker runs the module: its tests share a costly module fixture
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spot_node")]


def _env() -> dict:
    """The environment at the time of the call: a Ray started earlier in this process (another
    test's) sets RAY_AUTH_MODE here, and the cluster made below then wants its token."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _command(source: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "trace", "--input", str(source), "--output", str(out),
            "--timeout-s", "1", "--programs-per-block", "4", "--rows-per-shard", "20",
            "--progress-s", "0", "--max-run-lines", "1000", *extra]


def _committed(out: Path) -> int:
    return len(list((out / "_ledger").glob("part-*.json"))) if (out / "_ledger").exists() else 0


@pytest.fixture(scope="session")  # kept when xdist interleaves other modules
def uninterrupted(tmp_path_factory, dev_records) -> tuple[Path, Path]:
    """The input both tests run, and its run on a local Ray that lost nothing."""
    folder = tmp_path_factory.mktemp("spot")
    source = write_jsonl(folder / "in.jsonl", dev_records[:36])
    whole = folder / "whole"
    subprocess.run(_command(source, whole, "--actors", "2"), env=_env(), check=True,
                   capture_output=True, cwd=ROOT)
    return source, whole


def test_a_worker_node_lost_half_way_leaves_the_rows_of_an_uninterrupted_run(tmp_path, uninterrupted):
    from ray.cluster_utils import Cluster

    source, whole = uninterrupted
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        nodes = [cluster.add_node(num_cpus=2) for _ in range(2)]
        cluster.wait_for_nodes()
        out = tmp_path / "lost"
        # one trace actor: after the loss, the node left (2 CPUs) holds it and the read and
        # write tasks beside it (two actors would take both CPUs and leave the tasks none)
        run = subprocess.Popen(_command(source, out, "--address", cluster.address, "--actors", "1"),
                               env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and _committed(out) < 1:
            assert run.poll() is None, run.communicate()[1][-3000:]
            time.sleep(0.05)
        assert _committed(out) >= 1
        cluster.remove_node(nodes[0], allow_graceful=False)  # a spot node taken back
        try:
            _, stderr = run.communicate(timeout=420)
        except subprocess.TimeoutExpired:
            run.kill()
            raise AssertionError(run.communicate()[1][-4000:]) from None
        assert run.returncode == 0, stderr[-3000:]
    finally:
        cluster.shutdown()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"], manifest["checks"]
    assert_same_output(out, whole)


def test_a_node_that_cannot_start_the_sandbox_is_left_out_and_named(tmp_path, uninterrupted):
    """One node type without a working bubblewrap (here: a `bwrap` on its PATH that exits 1)
    must not end the job while healthy nodes remain; with none left, one line."""
    from ray.cluster_utils import Cluster

    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    source, whole = uninterrupted
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        healthy = cluster.add_node(num_cpus=2)
        cluster.add_node(num_cpus=2, env_vars={"PATH": f"{fake}:{os.environ['PATH']}"})
        cluster.wait_for_nodes()
        out = tmp_path / "out"
        run = subprocess.run(_command(source, out, "--address", cluster.address), env=_env(),
                             cwd=ROOT, capture_output=True, text=True, timeout=420)
        assert run.returncode == 0, run.stderr[-3000:]
        assert "no trace actor on" in run.stdout and "does not start" in run.stdout
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["accounting_ok"] and manifest["sandbox_nodes"]["healthy"] == 1
        [(node, info)] = manifest["sandbox_nodes"]["broken"].items()
        assert info["reason"] and info["host"]  # why, in words: bwrap cannot run there
        assert "Nodes without a sandbox" in (out / "report.html").read_text()
        assert_same_output(out, whole)
        cluster.remove_node(healthy)  # now no node has a working sandbox
        none = subprocess.run(_command(source, tmp_path / "none", "--address", cluster.address),
                              env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)
        said = [line for line in none.stderr.strip().splitlines() if "groundtrace" in line]
        assert none.returncode == 2 and len(said) == 1 and "no node can start the sandbox" in said[0]
        assert "Traceback" not in none.stderr  # (Ray's own connection lines come before it)
    finally:
        cluster.shutdown()
