"""The plan's sample (jobs/plan/sample.py): every record has its chance, none is read twice, and
the record count is right, for every input shape; and the plan's arithmetic on it."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from jobs.plan import sample as sample_mod
from jobs.plan.estimate import Scaler, duplicate_note, is_cheap
from jobs.plan.sample import EXACT, RATIO, chunk_lines, count_records, draw
from jobs.sources import iter_records, list_inputs


def _lines(n: int, seed: int = 0) -> list[str]:
    """Records of very different sizes (a chunk holds none, one or many of them)."""
    rng = random.Random(seed)
    return [json.dumps({"refcode": "x" * rng.choice([10, 200, 5000, 30000]), "funcname": "f",
                        "ios": [], "n": i}) for i in range(n)]


def _jsonl(path, lines: list[str], blank_every: int = 0) -> str:
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if blank_every and i % blank_every == 0:
            out.append("   ")  # a blank line is not a record
    path.write_text("\n".join(out) + "\n")
    return str(path)


def test_the_chunks_of_a_file_hold_each_of_its_records_once(tmp_path):
    path = _jsonl(tmp_path / "a.jsonl", _lines(300), blank_every=7)
    size = (tmp_path / "a.jsonl").stat().st_size
    wanted = [text for _, text in iter_records(path)]
    fs = pafs.LocalFileSystem()
    for chunk in (97, 4096, 10_000, size):  # smaller and larger than a record
        with fs.open_input_file(path) as handle:
            got = [text for start in range(0, size, chunk)
                   for _, text in chunk_lines(handle, size, start, min(size, start + chunk))]
        assert [json.loads(t)["n"] for t in got] == [json.loads(t)["n"] for t in wanted], chunk
        with fs.open_input_file(path) as handle:
            assert count_records(handle, size) == len(wanted)


def test_a_byte_order_mark_and_a_last_line_without_its_end_are_records(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": 1}\n{"a": 2}')
    with pafs.LocalFileSystem().open_input_file(str(path)) as handle:
        assert [t for _, t in chunk_lines(handle, path.stat().st_size, 0, 5)] == ['{"a": 1}\n']
        assert count_records(handle, path.stat().st_size) == 2


def _shapes(tmp_path, lines: list[str]) -> dict[str, str]:
    """The same records as one JSONL file, many JSONL files, .jsonl.gz files and Parquet."""
    shapes = {"one": _jsonl(tmp_path / "one.jsonl", lines)}
    many = tmp_path / "many"
    many.mkdir()
    for k in range(0, len(lines), 37):
        _jsonl(many / f"part-{k:05d}.jsonl", lines[k:k + 37])
    shapes["many"] = str(many)
    packed = tmp_path / "gz"
    packed.mkdir()
    for k in range(0, len(lines), 100):
        (packed / f"part-{k:05d}.jsonl.gz").write_bytes(
            gzip.compress(("\n".join(lines[k:k + 100]) + "\n").encode()))
    shapes["gz"] = str(packed)
    table = pa.Table.from_pylist([json.loads(line) for line in lines])
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=64)
    shapes["parquet"] = str(tmp_path / "rows.parquet")
    return shapes


@pytest.mark.parametrize("shape", ["one", "many", "gz", "parquet"])
def test_a_whole_sample_is_every_record_once_in_input_order(tmp_path, shape):
    lines = _lines(400)
    files = list_inputs(_shapes(tmp_path, lines)[shape])
    sample = draw(files, fraction=1.0, seed=3)
    assert [json.loads(r.text)["n"] for r in sample.records] == list(range(400))
    assert all(r.traced for r in sample.records)
    assert sample.total_records() == 400
    assert all(s.how == EXACT for s in sample.strata.values())


@pytest.mark.parametrize("shape", ["one", "many", "gz", "parquet"])
def test_a_sample_is_seeded_nested_and_near_its_share(tmp_path, shape):
    lines = _lines(2000, seed=1)
    files = list_inputs(_shapes(tmp_path, lines)[shape])
    first, again = draw(files, fraction=0.1, seed=5), draw(files, fraction=0.1, seed=5)
    other = draw(files, fraction=0.1, seed=6)
    ids = [json.loads(r.text)["n"] for r in first.records]
    assert ids == [json.loads(r.text)["n"] for r in again.records]
    assert ids != [json.loads(r.text)["n"] for r in other.records]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)  # each once, in input order
    traced = sum(r.traced for r in first.records)
    screened = len(first.records)
    assert 0.05 * 2000 < traced < 0.16 * 2000  # 10% traced, records of very different sizes
    assert 2 * traced < screened < 4.5 * traced  # three times as many screened
    assert first.total_records() == pytest.approx(2000, rel=0.2)
    # spread over the input, not its first records
    assert max(ids) > 1500 and min(ids) < 500


def test_a_large_jsonl_input_counts_its_records_by_a_ratio_that_holds(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_mod, "COUNT_BYTES", 1000)  # as if the input were large
    lines = _lines(3000, seed=2)
    files = list_inputs(_jsonl(tmp_path / "a.jsonl", lines))
    sample = draw(files, fraction=0.1, seed=0)
    assert sample.strata["jsonl"].how == RATIO
    assert sample.total_records() == pytest.approx(3000, rel=0.1)


def test_many_compressed_files_are_read_only_in_part(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_mod, "MIN_THROUGH_FILES", 4)
    lines = _lines(2000, seed=4)
    files = list_inputs(_shapes(tmp_path, lines)["gz"])  # 20 files
    read: list[str] = []
    original = sample_mod.iter_records
    monkeypatch.setattr(sample_mod, "iter_records", lambda uri: read.append(uri) or original(uri))
    sample = draw(files, fraction=0.05, seed=0)
    assert len(read) == 4 and sample.strata["through"].how == RATIO
    assert sample.total_records() == pytest.approx(2000, rel=0.25)


def test_sample_n_records_becomes_a_share_of_the_input(tmp_path):
    shapes = _shapes(tmp_path, _lines(2000, seed=5))
    for shape in ("one", "gz", "parquet"):
        sample = draw(list_inputs(shapes[shape]), records=200, seed=0)
        assert sample.fraction == pytest.approx(0.1, rel=0.3), shape


def test_a_damaged_parquet_file_is_one_read_reject_as_in_the_job(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 not a parquet file at all")
    sample = draw(list_inputs(str(path)), fraction=1.0, seed=0)
    assert len(sample.records) == 1 and "__groundtrace_read_error__" in sample.records[0].text


def test_a_sample_of_everything_gives_exact_figures_with_no_spread(tmp_path):
    lines = _lines(500, seed=8)
    files = list_inputs(_jsonl(tmp_path / "a.jsonl", lines))
    sample = draw(files, fraction=1.0, seed=0)
    figures = [Counter({"seen:read": 1, "kept:pair_filter": 1, "traced_pairs": 1, "s:actor": 0.5,
                        "kept:trace": json.loads(r.text)["n"] % 3 == 0}) for r in sample.records]
    ranges = Scaler(sample, figures, seed=0).ranges()
    assert ranges["records"] == {"estimate": 500, "low": 500, "high": 500}
    assert ranges["kept:trace"]["estimate"] == ranges["kept:trace"]["low"] == 167
    assert ranges["s:actor"]["estimate"] == 250


def test_a_part_sample_scales_each_figure_and_its_range_covers_the_truth(tmp_path):
    lines = _lines(4000, seed=9)
    files = list_inputs(_jsonl(tmp_path / "a.jsonl", lines))
    truth = sum(1 for line in lines if json.loads(line)["n"] % 4 == 0)
    covered = 0
    for seed in range(10):
        sample = draw(files, fraction=0.1, seed=seed)
        figures = []
        for r in sample.records:
            hit = json.loads(r.text)["n"] % 4 == 0
            figures.append(Counter({"seen:read": 1, "kept:pair_filter": 1,
                                    "traced_pairs": int(r.traced), "kept:trace": hit}))
        got = Scaler(sample, figures, seed=seed).ranges()["kept:trace"]
        assert got["estimate"] == pytest.approx(truth, rel=0.25)
        covered += got["low"] <= truth <= got["high"]
    assert covered >= 7  # a 90% range


def _mixture(n: int, seed: int) -> list[str]:
    """PyEdu problems of nine pairs, a third of which keep a trace, interleaved with calls of one
    pair, nearly all of which do: the mixture that misleads an estimate per pair."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < 0.2:
            out.append(json.dumps({"refcode": "x" * rng.choice([300, 3000]), "funcname": "f",
                                   "ios": [{"input": {}, "output": 0}] * 9, "n": i,
                                   "keeps": rng.random() < 0.35}))
        else:
            out.append(json.dumps({"code": "def f(): return 1", "input": "", "output": "1",
                                   "n": i, "keeps": rng.random() < 0.97}))
    return out


def _figures(sample) -> list[Counter]:
    """What the stages would count of each sampled record of :func:`_mixture`."""
    figures = []
    for r in sample.records:
        record = json.loads(r.text)
        pairs = len(record.get("ios", [])) or 1
        traced = pairs if r.traced else 0
        figures.append(Counter({"seen:read": 1, "kept:pair_filter": pairs, "traced_pairs": traced,
                                "seen:trace": traced, "kept:trace": record["keeps"] * r.traced,
                                "kept:trace_filter": record["keeps"] * r.traced}))
    return figures


def test_a_mixture_in_one_file_is_scaled_per_kind_of_record_and_never_past_its_bound(tmp_path):
    """Kept traces are scaled per record within classes of what a record holds (its format and
    pairs), not per pair: an estimate per pair over problems of nine pairs and calls of one
    swings with the sample's share of each, past the records themselves."""
    lines = _mixture(1000, seed=4)
    files = list_inputs(_jsonl(tmp_path / "mixed.jsonl", lines))
    truth = sum(json.loads(line)["keeps"] for line in lines)
    covered = 0
    for seed in range(20):
        sample = draw(files, fraction=0.2, seed=seed)
        scaler = Scaler(sample, _figures(sample), seed=seed)
        got = scaler.ranges(per_record=1)["kept:trace_filter"]
        assert got["estimate"] == pytest.approx(truth, rel=0.10), seed
        assert got["high"] <= scaler.ranges()["records"]["high"]  # at most one a record
        covered += got["low"] <= truth <= got["high"]
        formats = {c["format"] for c in scaler.classes["jsonl"]}
        assert formats == {"pyedu", "call"}, scaler.classes
    assert covered >= 16  # a 90% range: 18 of 20 expected


def test_the_sources_of_a_folder_are_strata_and_numbered_parts_one_source(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    _jsonl(folder / "pyedu.jsonl", _lines(300, seed=1))
    for k in range(3):
        _jsonl(folder / f"calls-{k:05d}.jsonl", _lines(100, seed=2 + k))
    sample = draw(list_inputs(str(folder)), fraction=0.3, seed=0)
    assert set(sample.strata) == {"jsonl:corpus/pyedu.jsonl", "jsonl:corpus/calls-#.jsonl"}
    assert sample.strata["jsonl:corpus/calls-#.jsonl"].files == 3
    assert sample.total_records() == 600
    assert {r.stratum for r in sample.records} == set(sample.strata)
    # a sliver of the bytes is no stratum of its own: too little of it is traced
    _jsonl(folder / "tiny.jsonl", _lines(1, seed=9)[:1])
    assert "jsonl:other" in draw(list_inputs(str(folder)), fraction=0.3, seed=0).strata


def test_cheap_figures_are_the_ones_before_the_sandbox():
    assert is_cheap("records") and is_cheap("seen:read") and is_cheap("rejected:dedup:x")
    assert is_cheap("kept:pair_filter")
    assert not is_cheap("kept:trace") and not is_cheap("s:actor") and not is_cheap("prompt_tokens")


def test_duplicates_in_a_sample_say_how_many_pairs_the_corpus_may_hold():
    note = duplicate_note(4, 0.2, 20.0)
    assert note["scaled"] == 20 and note["if_pairs"] == 100
    assert "undercounted" in note["note"]
    assert duplicate_note(3, 1.0, 3.0)["if_pairs"] == 3.0


def test_a_sample_of_a_bucket_is_the_sample_of_the_same_files_on_disk(tmp_path, s3_server,
                                                                      monkeypatch):
    """Ranged reads from object storage draw the same records as from a local folder."""
    for key, value in s3_server.items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    shapes = _shapes(tmp_path, _lines(600, seed=10))
    local, remote = {}, {}
    for shape in ("many", "parquet"):
        path = Path(shapes[shape])
        for file in sorted(path.iterdir()) if path.is_dir() else [path]:
            s3_server["client"].upload_file(str(file), s3_server["BUCKET"], f"plan/{shape}/{file.name}")
        local[shape] = draw(list_inputs(shapes[shape]), fraction=0.2, seed=1)
        remote[shape] = draw(list_inputs(f"s3://{s3_server['BUCKET']}/plan/{shape}/"),
                             fraction=0.2, seed=1)
        assert [r.text for r in remote[shape].records] == [r.text for r in local[shape].records]
        assert remote[shape].total_records() == local[shape].total_records() == 600
