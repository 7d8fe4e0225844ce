"""The trace job end to end on a real local Ray: every row that enters leaves."""

from __future__ import annotations

import datetime
import decimal
import gzip
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from conftest import ROOT, program, read_rows, write_jsonl

from jobs import cli
from jobs.config import JobConfig, RayConfig, TraceConfig
from jobs.pipeline import OutputExistsError, run_trace

pytestmark = pytest.mark.slow

GOOD = program("def main_solution(a, b):\n    total = a + b\n    return total\n",
               [({"a": i, "b": 2 * i}, 3 * i) for i in range(6)], description="add")
MIXED = [
    GOOD,
    program("def main_solution(n):\n    return n * 2\n", [({"n": 1}, 2), ({"n": 2}, 5)],
            description="one pair right, one wrong"),
    # past the run budget, then past the time limit traced with elision: a timeout
    program("def main_solution(n):\n    while True:\n        n += 1\n", [({"n": 1}, 0)],
            description="runaway"),
    # past the output budget, traced with elision too: a trace_limit
    program("def main_solution(n):\n    while True:\n        print('x' * 65536)\n",
            [({"n": 1}, 0)], description="printer"),
    program("import ctypes\n\ndef main_solution():\n    return ctypes.string_at(0)\n", [({}, 0)],
            description="segfaults"),
    program("def main_solution():\n    return bytearray(8 * 1024 ** 3)\n", [({}, 0)],
            description="memory bomb"),
    program("import random\n\ndef main_solution():\n    return random.random()\n", [({}, 0)]),
    program("import not_installed_mod\n\ndef main_solution(n):\n    return n\n",
            [({"n": 1}, 1), ({"n": 2}, 2)]),
    "{this line is not json",
]


def _config(tmp_path: Path, source: Path, **trace) -> JobConfig:
    return JobConfig(input=str(source), output=str(tmp_path / "out"),
                     trace=TraceConfig(timeout_s=2.0, **trace), ray=RayConfig(actors=2))


def test_every_pair_is_kept_or_rejected_with_a_reason(tmp_path, ray_local):
    source = write_jsonl(tmp_path / "in.jsonl", MIXED)
    manifest = run_trace(_config(tmp_path, source, samples_per_problem=0))
    out = tmp_path / "out"
    traces, rejects = read_rows(out / "traces"), read_rows(out / "rejects")
    assert manifest["accounting_ok"], manifest["checks"]
    assert json.loads((out / "manifest.json").read_text())["counts"] == manifest["counts"]

    pair_ids = {r["id"] for r in traces} | {r["id"] for r in rejects if "-" in r["id"]}
    past_program_filter = [r for r in MIXED if isinstance(r, dict) and "random" not in r["refcode"]]
    assert len(pair_ids) == sum(len(r["ios"]) for r in past_program_filter)
    assert len(traces) + len(rejects) == len({r["id"] for r in traces + rejects})  # no twice

    reasons = {(r["stage"], r["reason"]) for r in rejects}
    assert {("read", "invalid_json"), ("program_filter", "uses_randomness"),
            ("trace", "mismatch"), ("trace", "trace_limit"), ("trace", "timeout"),
            ("trace", "crashed"),
            ("trace", "memory"), ("trace", "missing_module")} <= reasons
    assert manifest["missing_modules"] == {"not_installed_mod": 1}  # programs, not pairs
    assert len(manifest["sandbox_isolation"]) == 1
    assert sorted(t["input"] for t in traces if t["funcname"] == "main_solution")[:1]
    add = [t for t in traces if t["problem_description"] == "add"]
    assert len(add) == 6 and all(json.loads(t["returned"]) == json.loads(t["expected_output"])
                                 for t in add)
    assert all(t["trace"].strip().endswith(t["returned"].replace('"', "'")) for t in add)


def test_samples_per_problem_keeps_one_trace_and_skips_the_rest(tmp_path, ray_local):
    source = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    manifest = run_trace(_config(tmp_path, source))
    assert manifest["counts"]["trace_filter"]["kept"] == 1
    assert manifest["counts"]["trace"]["reasons"] == {"not_sampled": 5}
    assert manifest["throughput"]["runs_executed"] == 1
    assert manifest["throughput"]["dry_runs"] == {"fits": 1}


def test_compressed_parquet_and_folder_inputs_read_the_same(tmp_path, ray_local):
    folder = tmp_path / "shards"
    folder.mkdir()
    lines = "".join(json.dumps(r) + "\n" for r in [GOOD, MIXED[1]])
    (folder / "a.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    (folder / "b.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    rows = [dict(r, ios=json.dumps(r["ios"])) for r in [GOOD, MIXED[1]]]
    pq.write_table(pa.Table.from_pylist(rows), folder / "c.parquet")
    manifest = run_trace(_config(tmp_path, folder))
    assert manifest["counts"]["read"]["seen"] == 6
    assert manifest["counts"]["read"]["kept"] == 6
    assert manifest["accounting_ok"]


def test_a_jsonl_file_that_starts_with_a_byte_order_mark_loses_no_record(tmp_path, ray_local):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    manifest = run_trace(_config(tmp_path, source))
    assert manifest["counts"]["read"] == {**manifest["counts"]["read"], "seen": 1, "kept": 1}


def test_parquet_columns_of_types_json_lacks_do_not_stop_the_read(tmp_path, ray_local):
    """Real datasets carry columns beside the record's own: dates, prices (decimal)."""
    rows = [dict(r, ios=json.dumps(r["ios"])) for r in [GOOD, MIXED[1]]]
    table = pa.Table.from_pylist(rows)
    table = table.append_column("created", pa.array([datetime.datetime(2024, 5, 1, 12)] * 2))
    table = table.append_column("price", pa.array([decimal.Decimal("1.50")] * 2))
    table = table.append_column("day", pa.array([datetime.date(2024, 5, 1)] * 2))
    pq.write_table(table, tmp_path / "in.parquet")
    manifest = run_trace(_config(tmp_path, tmp_path / "in.parquet"))
    assert manifest["counts"]["read"]["kept"] == 2 and manifest["accounting_ok"]
    assert manifest["counts"]["trace_filter"]["kept"] >= 2


def test_a_file_that_breaks_off_is_read_up_to_the_break_and_the_rest_is_one_reject(
        tmp_path, ray_local):
    """A truncated .gz or .zst (a download cut short) or a file that is not the Parquet it
    says it is: the job goes on with every other record."""
    folder = tmp_path / "shards"
    folder.mkdir()
    records = [program(f"def main_solution(n):\n    return n + {k}\n", [({"n": 1}, 1 + k)])
               for k in range(40)]
    lines = "".join(json.dumps(r) + "\n" for r in records).encode()
    cut = gzip.compress(lines)
    (folder / "a.jsonl.gz").write_bytes(cut[: len(cut) // 2])
    cut = zstandard.ZstdCompressor().compress(lines)
    (folder / "b.jsonl.zst").write_bytes(cut[: len(cut) // 2])
    (folder / "c.parquet").write_bytes(b"PAR1 these bytes are not a Parquet file")
    (folder / "d.jsonl").write_bytes(lines[:300])  # plain text: the cut line is invalid JSON
    manifest = run_trace(_config(tmp_path, folder))
    read = manifest["counts"]["read"]
    assert read["reasons"] == {"damaged_file": 3, "invalid_json": 1}
    assert 0 < read["kept"] < 80 and manifest["accounting_ok"]
    damaged = [r for r in read_rows(tmp_path / "out" / "rejects") if r["reason"] == "damaged_file"]
    assert sorted(r["id"].split(":")[0] for r in damaged) == ["a.jsonl.gz", "b.jsonl.zst",
                                                              "c.parquet"]
    assert all("the rest is lost" in r["detail"] for r in damaged)


def test_an_existing_output_is_not_overwritten_without_asking(tmp_path, ray_local):
    source = write_jsonl(tmp_path / "in.jsonl", [GOOD])
    cfg = _config(tmp_path, source)
    first = run_trace(cfg)
    # the same run again: already finished, nothing redone, the same manifest
    assert run_trace(cfg)["started_at"] == first["started_at"]
    cfg.trace.ios_per_program = 1  # another run: refused, naming what differs
    with pytest.raises(OutputExistsError, match="ios-per-program 10 .now 1."):
        run_trace(cfg)
    cfg.overwrite = True
    again = run_trace(cfg)
    assert again["accounting_ok"] and again["started_at"] != first["started_at"]


def test_the_sample_in_data_runs_through_the_cli(tmp_path, ray_local, capsys):
    out = tmp_path / "out"
    code = cli.main(["trace", "--input", str(ROOT / "data" / "sample.jsonl"), "--output", str(out),
                     "--actors", "2", "--timeout-s", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "trace_filter" in printed and "written: " in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"] and manifest["written"]["traces"] > 5
    assert manifest["config"]["trace"]["timeout_s"] == 2.0


def test_a_program_that_keeps_timing_out_is_not_run_to_the_end(tmp_path, ray_local):
    slow = program("def main_solution(n):\n    return sum(1 for _ in iter(int, 1))\n",
                   [({"n": i}, 0) for i in range(5)], description="never ends")
    source = write_jsonl(tmp_path / "in.jsonl", [slow])
    cfg = _config(tmp_path, source)
    cfg.trace.timeout_s = 0.5
    manifest = run_trace(cfg)
    assert manifest["counts"]["trace"]["reasons"] == {"timeout": 2, "timeout_streak": 3}
    assert manifest["throughput"]["runs_executed"] == 2
    # the first run's dry run ran out of its share; the second run went without one
    assert manifest["throughput"]["dry_runs"] == {"abandoned": 1, "skipped": 1}


def test_values_that_utf8_or_pythons_default_int_limit_cannot_hold_are_traced_not_lost(
        tmp_path, ray_local):
    """JSON's "\\ud800" is a lone surrogate, which Python holds but UTF-8 (Arrow, Parquet)
    cannot; 2000! has more digits than Python 3.11 converts by default. Neither may kill the
    run or lose the pair: JSON columns keep the very same value, as an escape."""
    surrogates = program("def main_solution(s):\n    return s + '\\ud800'\n",
                         [({"s": "a"}, "a\ud800"), ({"s": "\udfff"}, "\udfff\ud800")],
                         description="appends a lone surrogate \ud800")
    factorial = program("import math\n\ndef main_solution(n):\n    return math.factorial(n)\n",
                        [({"n": 2000}, math.factorial(2000)), ({"n": 5}, 120)])
    source = write_jsonl(tmp_path / "in.jsonl", [surrogates, factorial])
    manifest = run_trace(_config(tmp_path, source, samples_per_problem=0))
    assert manifest["accounting_ok"] and manifest["counts"]["trace_filter"]["kept"] == 4
    traces = {(t["input"], t["returned"]): t for t in read_rows(tmp_path / "out" / "traces")}
    returned = {json.loads(i)["s" if "s" in i else "n"]: json.loads(r) for i, r in traces}
    assert returned == {"a": "a\ud800", "\udfff": "\udfff\ud800", 2000: math.factorial(2000),
                        5: 120}
    described = {t["problem_description"] for t in traces.values()}
    assert "appends a lone surrogate \\ud800" in described
