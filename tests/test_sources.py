"""Which files an --input names: a file, a folder (every input file under it) or a glob read
the way the shell and fsspec read one."""

from __future__ import annotations

import pytest

from jobs.sources import group_files, input_versions, list_inputs


@pytest.fixture
def corpus(tmp_path):
    for name in ("a.jsonl", "b.jsonl.gz", "c.parquet", "notes.txt", "sub/x.jsonl", "sub/deep/y.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    return tmp_path


def _names(files: list[str], root) -> list[str]:
    return [f.removeprefix(str(root) + "/") for f in files]


def test_a_star_stays_in_its_folder_as_in_the_shell(corpus):
    assert _names(list_inputs(str(corpus / "*.jsonl")), corpus) == ["a.jsonl"]
    assert _names(list_inputs(str(corpus / "sub/*.jsonl")), corpus) == ["sub/x.jsonl"]
    assert _names(list_inputs(str(corpus / "?.jsonl*")), corpus) == ["a.jsonl", "b.jsonl.gz"]


def test_two_stars_cross_folders(corpus):
    assert _names(list_inputs(str(corpus / "**/*.jsonl")), corpus) == [
        "a.jsonl", "sub/deep/y.jsonl", "sub/x.jsonl"]
    assert _names(list_inputs(str(corpus / "sub/**")), corpus) == ["sub/deep/y.jsonl", "sub/x.jsonl"]


def test_a_folder_is_every_input_file_under_it(corpus):
    assert _names(list_inputs(str(corpus)), corpus) == [
        "a.jsonl", "b.jsonl.gz", "c.parquet", "sub/deep/y.jsonl", "sub/x.jsonl"]


def test_a_glob_that_names_nothing_is_one_clear_error(corpus):
    with pytest.raises(FileNotFoundError, match="no JSONL or Parquet files under"):
        list_inputs(str(corpus / "*.csv"))


def test_small_files_share_read_tasks_and_a_large_one_has_its_own():
    kib, mib = 1 << 10, 1 << 20
    # 1,000 files of 5 KiB: a few tasks of about 256 KiB each, in file order
    groups = group_files([5 * kib] * 1000, parallelism=200)
    assert [i for group in groups for i in group] == list(range(1000))
    assert 15 <= len(groups) <= 25 and max(len(g) for g in groups) == 51
    # a large input spreads over Ray's parallelism, never above 64 MiB a task
    assert len(group_files([mib] * 400, parallelism=20)) == 20
    assert max(len(g) for g in group_files([mib] * 400, parallelism=1)) == 64
    # a file as big as a task, or of unknown size (https), is a task of its own
    assert group_files([kib, 64 * mib, kib, None, kib], parallelism=1) == [[0], [1], [2], [3], [4]]


def test_the_listing_gives_each_file_its_size_and_time_without_a_look_up_each(corpus, monkeypatch):
    import jobs.sources

    files = list_inputs(str(corpus))
    looked_up = []
    monkeypatch.setattr(jobs.sources, "filesystem_for", lambda uri: looked_up.append(uri))
    versions = input_versions(files)
    assert looked_up == [] and [v[0] for v in versions] == files
    assert versions[0][1] == (corpus / "a.jsonl").stat().st_size
    assert versions[0][2] == (corpus / "a.jsonl").stat().st_mtime_ns
