"""Which files an --input names: a file, a folder (every input file under it) or a glob read
the way the shell and fsspec read one."""

from __future__ import annotations

import pytest

from jobs.sources import list_inputs


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
