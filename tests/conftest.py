from __future__ import annotations

import json
from pathlib import Path

import pytest

from trace_workers.sandbox import Sandbox, SandboxLimits, SandboxSettings

ROOT = Path(__file__).resolve().parent.parent
DEV_SET = ROOT.parent / "shared" / "data" / "pyedu_dev.jsonl"


@pytest.fixture(scope="session")
def dev_records() -> list[dict]:
    if not DEV_SET.exists():
        pytest.skip("../shared/data/pyedu_dev.jsonl is not beside the checkout")
    return [json.loads(line) for line in DEV_SET.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def sandbox():
    """One lean jail for the whole session (tests must leave it usable, or it restarts)."""
    box = Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=2.0), preload=("numpy",)))
    box.start()
    yield box
    box.close()


@pytest.fixture(scope="session")
def ray_local():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=8, include_dashboard=False, configure_logging=False)
    yield ray
    ray.shutdown()


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


def run_code(box: Sandbox, code: str, kwargs: dict | None = None, depth: int = 1) -> dict:
    return box.run(code, "main_solution", json.dumps(kwargs or {}), depth)
