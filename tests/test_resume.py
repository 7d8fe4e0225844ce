"""Resuming from the ledger: a run started again on the output of a killed one keeps what was
committed, takes out what was only half written, and ends with the rows of an uninterrupted run.

The states a kill leaves are made here by hand, exactly: a write whose shards were published
but whose ledger entry was not (the kill came between them), and a resume that was itself
killed half-way through its repairs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, assert_same_counts, assert_same_output

from jobs.config import JobConfig, RayConfig
from jobs.ledger import Ledger
from jobs.pipeline import JOBS, OutputExistsError, run_job
from jobs.sink import LABEL_OF_FOLDER, OUTPUT_DIRS
from jobs.storage import ShardWriter

# one worker runs the module: its tests share a costly module fixture
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("resume")]


def _config(out: Path, **changes) -> JobConfig:
    return JobConfig(input=str(ROOT / "data" / "sample.jsonl"), output=str(out),
                     ray=RayConfig(actors=2, programs_per_block=6, batch_size=1,
                                   rows_per_shard=6), **changes)


@pytest.fixture(scope="session")  # kept when xdist interleaves other modules
def finished(tmp_path_factory, ray_local) -> Path:
    out = tmp_path_factory.mktemp("resume") / "whole"
    assert run_job(_config(out), "run")["accounting_ok"]
    return out


def _blocks(entry: Path) -> set[str]:
    data = json.loads(entry.read_text())
    return {block for runs in data["files"].values() for block, _ in runs} | set(data["stats"]) - {""}


def _as_if_killed(finished: Path, to: Path, lost_entries: int = 1) -> list[Path]:
    """A copy of a finished run as a kill would leave it: no manifest, and ``lost_entries``
    writes published their shards but not their ledger entries: writes that share an input
    block with a write that was committed, so that this block is half written."""
    shutil.copytree(finished, to)
    (to / "manifest.json").unlink()
    entries = sorted((to / "_ledger").glob("part-*.json"))
    shared = [e for e in entries if any(_blocks(e) & _blocks(other) for other in entries
                                        if other != e)]
    assert len(shared) > lost_entries, "no input block spans two writes: make blocks bigger"
    lost = shared[-lost_entries:]
    for entry in lost:
        entry.unlink()
    return lost


def _resume_ends_like(finished: Path, out: Path) -> dict:
    """Run the same command on ``out``; it ends with the finished run's counts and rows."""
    manifest = run_job(_config(out), "run")
    assert manifest["accounting_ok"], manifest["checks"]
    assert_same_counts(manifest["counts"], json.loads((finished / "manifest.json").read_text())["counts"])
    assert_same_output(out, finished)
    return manifest


def test_shards_without_a_ledger_entry_are_deleted_and_their_blocks_done_again(
        finished, tmp_path, ray_local):
    out = tmp_path / "killed"
    _as_if_killed(finished, out, lost_entries=2)
    # and temporary files of writes killed before their rename, a shard's and an entry's
    (out / "traces" / ".part-000-000099.parquet.0123.tmp").write_bytes(b"half a shard")
    (out / "_ledger" / ".part-000-000099.json.0123.tmp").write_text("{")
    resume = _resume_ends_like(finished, out)["resume"]
    assert resume["attempt"] == 2 and resume["orphans_deleted"] > 0
    assert resume["blocks_kept"] > 0 and resume["blocks_redone"] > 0
    assert not list(out.rglob("*.tmp"))


def test_a_resume_killed_during_its_repairs_is_repaired_by_the_next(finished, tmp_path, ray_local):
    out = tmp_path / "killed"
    _as_if_killed(finished, out)
    class KilledBeforeTheFirstEntry(ShardWriter):
        def publish(self, rel, write):
            if rel.startswith("_ledger/"):
                raise KeyboardInterrupt("killed after rewriting shards, before their entry")
            return super().publish(rel, write)

    writer = KilledBeforeTheFirstEntry(str(out))
    with pytest.raises(KeyboardInterrupt):
        Ledger(writer.fs, writer.root, LABEL_OF_FOLDER).resume(
            JOBS["run"][0], writer, OUTPUT_DIRS[:-1])
    _resume_ends_like(finished, out)


def test_an_unfinished_run_with_other_settings_is_not_resumed(finished, tmp_path, ray_local):
    out = tmp_path / "killed"
    _as_if_killed(finished, out)
    other = _config(out)
    other.trace.ios_per_program = 3
    with pytest.raises(OutputExistsError, match="unfinished run"):
        run_job(other, "run")
    other.overwrite = True  # starts over with the new settings
    manifest = run_job(other, "run")
    assert manifest["resume"]["attempt"] == 1 and manifest["accounting_ok"]


def test_fresh_starts_over_instead_of_resuming(finished, tmp_path, ray_local):
    out = tmp_path / "killed"
    _as_if_killed(finished, out)
    manifest = run_job(_config(out, fresh=True), "run")
    assert manifest["resume"] == {"attempt": 1, "blocks_kept": 0, "blocks_redone": 0,
                                  "orphans_deleted": 0}
    assert_same_output(out, finished)


def test_a_run_killed_after_its_last_write_only_writes_the_manifest(finished, tmp_path, ray_local):
    out = tmp_path / "killed"
    shutil.copytree(finished, out)
    (out / "manifest.json").unlink()
    manifest = run_job(_config(out), "run")
    assert manifest["resume"]["blocks_redone"] == 0 and manifest["resume"]["orphans_deleted"] == 0
    assert manifest["written"] == json.loads((finished / "manifest.json").read_text())["written"]
    assert_same_output(out, finished)


def test_a_ledger_entry_cut_off_by_a_signal_counts_as_absent(finished, tmp_path, ray_local):
    """On object storage a write cut off mid-way is absent, but an entry written by a tool
    that does not (or half a local file) must not stop the resume: it is treated as absent."""
    out = tmp_path / "killed"
    shutil.copytree(finished, out)
    (out / "manifest.json").unlink()
    entry = sorted((out / "_ledger").glob("part-*.json"))[-1]
    entry.write_text(entry.read_text()[: len(entry.read_text()) // 2])  # half an entry
    resume = _resume_ends_like(finished, out)["resume"]
    assert resume["blocks_redone"] > 0 and resume["orphans_deleted"] > 0


def test_an_input_changed_between_attempts_is_refused_in_one_line(tmp_path, ray_local):
    source = tmp_path / "in.jsonl"
    shutil.copy(ROOT / "data" / "sample.jsonl", source)
    out = tmp_path / "out"
    cfg = _config(out)
    cfg.input = str(source)
    assert run_job(cfg, "trace")["accounting_ok"]
    (out / "manifest.json").unlink()  # as if killed before its end
    source.write_text(source.read_text() + source.read_text().splitlines()[0] + "\n")
    with pytest.raises(OutputExistsError, match=r"an input that has changed since \(.*in\.jsonl"):
        run_job(cfg, "trace")
    cfg.overwrite = True
    assert run_job(cfg, "trace")["resume"]["attempt"] == 1
