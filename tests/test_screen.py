"""The screen: exact duplicates, near-copies and benchmark items leave before any program runs,
each as a reject that names what it repeats, whichever file or read task it comes from; the
record kept is the first in input order, in a fresh run and in a resumed one."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ROOT

from jobs import cli
from jobs.screen.code_tokens import code_tokens
from jobs.screen.contamination import BenchmarkIndex, item_code
from jobs.screen.near_dup import BandHasher, NearDupSettings
from jobs.screen.stage import resolve_decisions

PROGRAM = '''import math

def main_solution(numbers, scale):
    # keep the even ones, scaled
    kept = []
    for value in numbers:
        if value % 2 == 0:
            kept.append(value * scale)
    total = sum(kept)
    return {"kept": kept, "total": total, "root": math.isqrt(total)}
'''
# the same program as someone else wrote it down: other comments, a docstring, blank lines,
# another name for the function
RENAMED = '''import math


def solve(numbers, scale):
    """Scale the even numbers and sum them."""
    kept = []
    for value in numbers:   # each number
        if value % 2 == 0:
            kept.append(value * scale)

    total = sum(kept)
    return {"kept": kept, "total": total, "root": math.isqrt(total)}
'''


def test_comments_docstrings_spacing_and_the_functions_name_do_not_change_the_tokens():
    assert code_tokens(PROGRAM).tokens == code_tokens(RENAMED).tokens
    tokens = code_tokens(PROGRAM).tokens
    assert "main_solution" not in tokens and "#" not in " ".join(tokens)
    # strings and numbers stay as written: another constant is another program
    assert code_tokens(PROGRAM.replace("% 2", "% 3")).tokens != tokens


def test_near_copies_share_a_band_and_different_programs_do_not():
    hasher = BandHasher(NearDupSettings(threshold=0.8))
    assert (hasher.bands, hasher.rows) == (11, 11)  # the layout the README's odds are for
    bands = set(hasher.band_keys(code_tokens(PROGRAM).tokens))
    assert bands == set(hasher.band_keys(code_tokens(RENAMED).tokens))
    near = PROGRAM.replace("kept.append(value * scale)", "kept.append(scale * value)")
    assert bands & set(hasher.band_keys(code_tokens(near).tokens))
    other = "def main_solution(s):\n    return ''.join(reversed(s.split(',')))\n"
    assert not bands & set(hasher.band_keys(code_tokens(other).tokens))


CRUX = {"id": "sample_17", "code": "def f(text, ch):\n    count = 0\n    for c in text:\n"
        "        if c == ch:\n            count += 1\n    return count * 2 - len(text)\n",
        "input": "'banana', 'a'", "output": "0"}
HUMANEVAL = {"task_id": "HumanEval/9",
             "prompt": "from typing import List\n\n\ndef rolling_max(numbers: List[int]) -> List[int]:"
                       "\n    \"\"\" From a list of integers, the rolling maximum.\n    \"\"\"\n",
             "canonical_solution": "    running_max = None\n    result = []\n\n    for n in numbers:\n"
                                   "        if running_max is None:\n            running_max = n\n"
                                   "        else:\n            running_max = max(running_max, n)\n\n"
                                   "        result.append(running_max)\n\n    return result\n",
             "test": "def check(candidate): pass\n"}
MBPP = {"task_id": 11, "text": "Remove first and last occurrence of a character.",
        "code": "def remove_Occ(s,ch): \r\n    for i in range(len(s)): \r\n        if (s[i] == ch): \r\n"
                "            s = s[0 : i] + s[i + 1:] \r\n            break\r\n    return s ",
        "test_list": ["assert remove_Occ(\"hello\",\"l\") == \"heo\""]}
SHORT = {"id": "sample_3", "code": "def f(nums):\n    return sorted(nums)[::-1]\n",
         "input": "[1, 3, 2]", "output": "[3, 2, 1]"}


def _index(ngram: int = 13) -> BenchmarkIndex:
    index = BenchmarkIndex(ngram=ngram)
    for name, record in (("cruxeval.jsonl", CRUX), ("humaneval.jsonl", HUMANEVAL),
                         ("mbpp.jsonl", MBPP), ("cruxeval.jsonl", SHORT)):
        index.add(name, str(record.get("id", record.get("task_id"))), item_code(record))
    return index.freeze()


def _wrapped(body_function: str) -> str:
    """A PyEdu program that calls a benchmark's function, renamed, with a docstring."""
    return (body_function + "\n\ndef main_solution(text, ch):\n"
            "    \"\"\"Entry point.\"\"\"\n    return helper(text, ch)\n")


@pytest.mark.parametrize("program, item", [
    (_wrapped(CRUX["code"].replace("def f(", "def helper(").replace(
        "    count = 0\n", "    \"\"\"Count, doubled.\"\"\"\n    count = 0\n")), "sample_17"),
    ("def main_solution(numbers):\n    # rolling max\n" + HUMANEVAL["canonical_solution"],
     "HumanEval/9"),
    ("def strip_char(s, ch):\n" + MBPP["code"].split("\n", 1)[1], "11"),
    ("def main_solution(values):\n    return sorted(values)[::-1]\n", None),  # other names: no
    ("def main_solution(nums):\n    \"\"\"Sorted, descending.\"\"\"\n    return sorted(nums)[::-1]\n",
     "sample_3"),  # too short for a 13-token run: the equal body finds it
])
def test_benchmark_items_are_found_through_renames_and_docstrings(program, item):
    match = _index().match(code_tokens(program))
    assert (match.item if match else None) == item, match
    if match:
        assert match.benchmark.endswith(".jsonl") and item in match.detail()


def test_an_unrelated_program_shares_no_run_with_the_benchmarks():
    assert _index(ngram=8).match(code_tokens(PROGRAM)) is None


TREE = ("class TreeNode:\n    def __init__(self, val=0, left=None, right=None):\n"
        "        self.val = val\n        self.left = left\n        self.right = right\n\n")


def test_an_idiom_shared_with_an_item_is_no_contamination_but_the_item_inside_a_program_is():
    index = BenchmarkIndex()
    item = TREE + ("def f(root):\n    if root is None:\n        return 0\n"
                   "    return 1 + max(f(root.left), f(root.right))\n")
    index.add("bench.jsonl", "depth", item)
    index.freeze()
    # the same TreeNode class, another function: an idiom shared, not the item
    other = TREE + ("def main_solution(values):\n    total = 0\n    for v in values:\n"
                    "        total += TreeNode(v).val\n    return total\n")
    assert index.match(code_tokens(other)) is None
    # the item itself, renamed, inside a larger program with more code around it
    inside = ("import json\n\n" + item.replace("def f(", "def depth(").replace("f(root.", "depth(root.")
              + "\n\ndef main_solution(data):\n    nodes = json.loads(data)\n"
              "    return depth(build(nodes))\n")
    match = index.match(code_tokens(inside))
    assert match is not None and match.item == "depth"


def test_the_first_record_in_input_order_is_kept_and_an_exact_duplicate_stays_one():
    order = {name: index << 40 | 1 for index, name in enumerate("abcde")}
    rows = [
        {"kind": "link", "order": order["c"], "rep": order["b"], "stage": "dedup",
         "reason": "near_duplicate", "benchmark": None, "detail": "b"},
        {"kind": "link", "order": order["b"], "rep": order["a"], "stage": "dedup",
         "reason": "near_duplicate", "benchmark": None, "detail": "a"},
        {"kind": "decision", "order": order["d"], "rep": order["a"], "stage": "dedup",
         "reason": "duplicate_record", "benchmark": None, "detail": "same as a"},
        {"kind": "decision", "order": order["d"], "rep": None, "stage": "decontaminate",
         "reason": "contaminated", "benchmark": "x.jsonl", "detail": "x"},
        {"kind": "decision", "order": order["e"], "rep": None, "stage": "decontaminate",
         "reason": "contaminated", "benchmark": "x.jsonl", "detail": "x"},
    ]
    import pyarrow as pa

    from jobs.screen.stage import DECISION_SCHEMA

    decided = resolve_decisions([pa.Table.from_pylist(rows[::-1], schema=DECISION_SCHEMA)])
    assert {o: d["reason"] for o, d in decided.items()} == {
        order["b"]: "near_duplicate", order["c"]: "near_duplicate",
        order["d"]: "duplicate_record", order["e"]: "contaminated"}
    # c is linked to b, b to a: the group keeps a, and c names a
    assert "a" in decided[order["c"]]["detail"]


def _record(code: str, description: str, ios: list[dict] | None = None,
            funcname: str = "main_solution") -> str:
    return json.dumps({"problem_description": description, "io_requirements": "",
                       "refcode": code, "funcname": funcname,
                       "ios": ios or [{"input": {"numbers": [1, 2, 3, 4], "scale": 3},
                                       "output": {"kept": [6, 12], "total": 18, "root": 4}}]})


def _rejects(out: Path) -> list[dict]:
    return [r for f in sorted((out / "rejects").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two files: the second repeats a record of the first, holds a near copy of another and
    a benchmark's function; a call-format file calls one function twice."""
    folder = tmp_path_factory.mktemp("corpus") / "in"
    folder.mkdir()
    sample = (ROOT / "data" / "sample.jsonl").read_text().splitlines()
    (folder / "a.jsonl").write_text("\n".join([_record(PROGRAM, "even ones"), *sample[:4]]) + "\n")
    crux_program = _wrapped(CRUX["code"].replace("def f(", "def helper("))
    (folder / "b.jsonl").write_text("\n".join([
        sample[2],  # the same record as a.jsonl:4
        _record(RENAMED, "scaled evens", funcname="solve"),  # a near copy of a.jsonl:1
        _record(crux_program, "count", [{"input": {"text": "banana", "ch": "a"}, "output": 0}]),
    ]) + "\n")
    calls = [{"code": "def f(x):\n    return [v * 2 for v in x if v > 0]\n", "input": str(arg),
              "output": str([v * 2 for v in arg if v > 0])} for arg in ([1, -2, 3], [4, 5])]
    (folder / "c.jsonl").write_text("\n".join(json.dumps(c) for c in calls) + "\n")
    (folder.parent / "cruxeval.jsonl").write_text(json.dumps(CRUX) + "\n")
    return folder


@pytest.mark.slow
def test_duplicates_near_copies_and_benchmark_items_are_rejects_that_name_what_they_repeat(
        corpus, tmp_path, ray_local):
    out = tmp_path / "out"
    argv = ["trace", "--input", str(corpus / "*.jsonl"), "--output", str(out), "--actors", "2",
            "--decontaminate", str(corpus.parent / "cruxeval.jsonl"), "--progress-s", "0"]
    assert cli.main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"]
    screen = [r for r in _rejects(out) if r["stage"] in ("dedup", "decontaminate")]
    by_id = {r["id"]: (r["reason"], r["detail"]) for r in screen}
    assert set(by_id) == {"b.jsonl:1", "b.jsonl:2", "b.jsonl:3"}, by_id
    assert by_id["b.jsonl:1"][0] == "duplicate_record" and "a.jsonl:4" in by_id["b.jsonl:1"][1]
    assert by_id["b.jsonl:2"][0] == "near_duplicate" and "a.jsonl:1" in by_id["b.jsonl:2"][1]
    assert by_id["b.jsonl:3"][0] == "contaminated" and "cruxeval.jsonl item sample_17" in by_id[
        "b.jsonl:3"][1]
    counts = manifest["counts"]
    assert counts["dedup"]["reasons"] == {"duplicate_record": 1, "near_duplicate": 1}
    assert counts["decontaminate"]["reasons"] == {"contaminated": 1}
    assert manifest["screen"]["benchmarks"] == {"cruxeval.jsonl": 1}
    # the two calls of one function are two inputs, not copies: both are traced
    traced = {r["problem_id"] for f in (out / "traces").glob("*.parquet")
              for r in pq.read_table(f).to_pylist()}
    assert counts["program_filter"]["seen"] == counts["read"]["kept"] - 3
    # one decision file for the partition of input files, each decision naming its file
    decided = pq.read_table(out / "_screen" / "part-00000.parquet").to_pylist()
    assert [r["file"] for r in decided] == [1, 1, 1]
    assert traced  # the kept records went on to the sandbox
    page = (out / "report.html").read_text()
    assert "cruxeval.jsonl" in page

    # the same command again replaces nothing and decides the same (the committed screen)
    again = tmp_path / "again"
    assert cli.main([*argv[:4], str(again), *argv[5:]]) == 0
    def screened(folder: Path) -> list[str]:
        return sorted(str((r["id"], (r["reason"], r["detail"]))) for r in _rejects(folder)
                      if r["stage"] in ("dedup", "decontaminate"))

    assert screened(again) == sorted(map(str, by_id.items()))
    # a resumed run reuses the committed screen: the same choices, not made again
    done = again / "_screen" / "done.json"
    committed = done.read_text()
    (again / "manifest.json").unlink()
    assert cli.main([*argv[:4], str(again), *argv[5:]]) == 0
    assert done.read_text() == committed and screened(again) == sorted(map(str, by_id.items()))
    assert json.loads((again / "manifest.json").read_text())["accounting_ok"]


@pytest.mark.slow
def test_the_distributed_screen_decides_as_the_one_in_the_driver(corpus, tmp_path, ray_local):
    """Small inputs are screened in the driver's process, large ones on Ray (fingerprint
    tasks, a hash shuffle, a resolve task): the same decisions either way."""
    from dataclasses import replace

    from jobs.config import ScreenConfig
    from jobs.screen.stage import FILES_PER_PART, decision_file, run_screen
    from jobs.sources import list_inputs
    from trace_workers.raw_filter import RawFilterConfig

    settings = ScreenConfig(decontaminate=[str(corpus.parent / "cruxeval.jsonl")]).settings(
        RawFilterConfig())
    files = list_inputs(str(corpus))
    here = run_screen(settings, files, str(tmp_path / "here"), 2)
    on_ray = run_screen(replace(settings, in_driver_bytes=0), files, str(tmp_path / "ray"), 2)
    assert here["rejected"] == on_ray["rejected"] == {
        "duplicate_record": 1, "near_duplicate": 1, "contaminated": 1}
    for part in {file_index // FILES_PER_PART for file_index in here["files"]}:
        name = decision_file(part)
        assert pq.read_table(tmp_path / "here" / name).to_pylist() == pq.read_table(
            tmp_path / "ray" / name).to_pylist()
