"""A corpus of many small objects: the same programs in 264 files (one record or none each) as
in 3 files give the same traces and rejects, read from a folder or from a bucket, and a run
over the many files cut off part-way and started again ends with the uninterrupted run's
rows. Small files share read tasks; blocks stay keyed by file and position; the screen's
decisions are stored by partitions of 256 files (the duplicates sit in files 260 and 262)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, output_rows
from generated_programs import corpus

from jobs import cli

# one worker runs the module: its tests share a costly module fixture
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("many_files")]
PROGRAMS = 130


@pytest.fixture(scope="session")  # kept when xdist interleaves other modules
def lines() -> list[str]:
    unique = corpus(PROGRAMS, seed=30, ios=1)
    return unique + [unique[3], unique[120]]  # two exact copies, last in input order


def _deal(lines: list[str], files: int, folder: Path, spread: int = 1) -> Path:
    """``lines`` dealt round-robin into ``files`` files, each followed by ``spread - 1``
    empty ones (a corpus of small objects has those too)."""
    folder.mkdir(parents=True)
    for index in range(files * spread):
        part = lines[index // spread::files] if index % spread == 0 else []
        (folder / f"part-{index:05d}.jsonl").write_text("".join(line + "\n" for line in part))
    return folder


def _trace(source: str, out: Path) -> dict:
    assert cli.main(["trace", "--input", source, "--output", str(out), "--actors", "2",
                     "--progress-s", "0", "--rows-per-shard", "20"]) == 0
    return json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="session")  # kept when xdist interleaves other modules
def few_and_many(tmp_path_factory, lines, ray_local):
    """The corpus in 3 files and in one file per record, each traced once."""
    folder = tmp_path_factory.mktemp("many-files")
    few, many = _deal(lines, 3, folder / "few"), _deal(lines, len(lines), folder / "many", 2)
    return (few, _trace(str(few), folder / "out-few")), (many, _trace(str(many), folder / "out-many"))


def _same_run(a: Path, b: Path) -> None:
    """The same traces, and rejects of the same reasons (a duplicate is named by its file)."""
    rows_a, rows_b = output_rows(a), output_rows(b)
    assert rows_a["traces"] == rows_b["traces"] and len(rows_a["traces"]) >= PROGRAMS * 0.9
    assert sorted(r[1:] for r in rows_a["rejects"]) == sorted(r[1:] for r in rows_b["rejects"])


def test_many_small_files_give_what_a_few_files_give(few_and_many):
    (_, few), (many_folder, many) = few_and_many
    assert few["accounting_ok"] and many["accounting_ok"]
    assert few["counts"] == many["counts"]
    assert many["counts"]["dedup"]["reasons"] == {"duplicate_record": 2}
    out = many_folder.parent / "out-many"
    _same_run(many_folder.parent / "out-few", out)
    # the screen's decisions: one file per partition of 256 input files, not one per input
    assert sorted(p.name for p in (out / "_screen").glob("*.parquet")) == ["part-00001.parquet"]


def test_the_many_files_read_from_a_bucket_give_the_same(few_and_many, s3_server, tmp_path):
    (few_folder, _), (many_folder, _) = few_and_many
    for path in sorted(many_folder.iterdir()):
        s3_server["client"].upload_file(str(path), s3_server["BUCKET"], f"many/{path.name}")
    # a process of its own: the credentials are in its environment (and its Ray's)
    env = {**os.environ, **{k: v for k, v in s3_server.items() if k.startswith("AWS_")},
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "trace", "--input",
                           f"s3://{s3_server['BUCKET']}/many/", "--output", str(tmp_path / "out"),
                           "--actors", "2", "--progress-s", "0", "--storage-retry-s", "20"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["accounting_ok"] and manifest["counts"]["read"]["seen"] == PROGRAMS + 2
    _same_run(few_folder.parent / "out-few", tmp_path / "out")


def test_a_run_over_many_files_cut_off_part_way_resumes_to_the_same_rows(few_and_many, tmp_path):
    """The state kill -9 leaves (tests/test_resume.py makes it the same way): the finished
    run's output less its manifest and its last half of ledger entries, whose shards are
    then orphans; the same command goes on from there."""
    _, (many_folder, _) = few_and_many
    whole, out = many_folder.parent / "out-many", tmp_path / "killed"
    shutil.copytree(whole, out)
    (out / "manifest.json").unlink()
    entries = sorted((out / "_ledger").glob("part-*.json"))
    for entry in entries[len(entries) // 2:]:
        entry.unlink()
    manifest = _trace(str(many_folder), out)
    assert manifest["accounting_ok"] and manifest["resume"]["attempt"] == 2
    assert manifest["resume"]["blocks_kept"] > 0 and manifest["resume"]["orphans_deleted"] > 0
    assert output_rows(out) == output_rows(whole)
