"""The tasks whose answers are checked by running them: input prediction (a proposed input is
kept only when the program returns the shown output, whatever input it is) and rewrites (a
proposed program is kept only when it returns every expected output). Model answers here are
written by hand and run in the real sandbox; tests/test_translate.py runs the real engine."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from jobs import cli
from jobs.config import JobConfig, RayConfig
from jobs.pipeline import run_job
from jobs.sink import StreamSink
from trace_workers.actor import TraceStageConfig
from trace_workers.records import parse_record
from trace_workers.stats import StageStats
from trace_workers.stream import CHECK
from translate.answer import proposed_input
from translate.export import BuildSettings
from translate.sandbox_check import CheckActor
from translate.stage import VerifySettings, start_check
from translate.tasks import TaskSettings, task_items, training_prompt

CODE = ("def main_solution(a, b):\n"
        "    if b == 0:\n"
        "        raise ValueError('b must not be 0')\n"
        "    return a // b\n")
PAIRS = [['{"a": 7, "b": 2}', "3"], ['{"a": 9, "b": 3}', "3"], ['{"a": 10, "b": 5}', "2"]]
TRACE = {"id": "p-0", "problem_id": "p", "problem_description": "integer division",
         "io_requirements": "", "refcode": CODE, "funcname": "main_solution",
         "input": '{"a": 7, "b": 2}', "returned": "3", "value_format": "json", "trace": "...",
         "program_pairs": json.dumps(PAIRS)}


@pytest.fixture(scope="module")
def checker():
    actor = CheckActor(TraceStageConfig(), BuildSettings())
    yield actor
    actor.tracer.close()


def _item(task: str = "input") -> dict:
    items = task_items(TRACE, TaskSettings(("input", "rewrite")), StageStats())
    assert [i["id"] for i in items] == ["p-0:i", "p-0:r"]
    return next(i for i in items if i["task"] == task)


def _rows(checker, answer: str, task: str = "input") -> list[dict]:
    """The rows the verify step and the sandbox check make of one hand-written answer."""
    stats = StageStats()
    stats.see("verify")  # verify_batch counts the item before it starts the check
    row = start_check(_item(task), f"<think>…</think>\n{answer}", {"translator": "llm"},
                      VerifySettings(), stats)
    rows = [row] if row["kind"] != CHECK else checker.check(row["payload"], stats)
    assert stats.seen["verify"] == 1 and stats.kept["verify"] + sum(stats.rejected["verify"].values()) == 1
    return rows


def _judge(checker, answer: str, task: str = "input") -> tuple[str, dict]:
    """(kind of the last row, its payload): the example, or the reject."""
    rows = _rows(checker, answer, task)
    last = [r for r in rows if r["kind"] != "rewrite"][-1]
    return last["kind"], json.loads(last["payload"])


def test_the_original_input_and_another_that_gives_the_same_output_are_both_kept(checker):
    for answer in ('Final answer: {"a": 7, "b": 2}',
                   'Dividing 9 by 3 gives 3.\nFinal answer: {"a": 9, "b": 3}'):
        kind, example = _judge(checker, answer)
        assert kind == "example" and example["task"] == "input"
        assert example["messages"][0]["content"] == training_prompt(_item())
        assert "Given the following output:\n\n3" in example["messages"][0]["content"]


def test_a_wrong_input_is_rejected_with_the_output_it_gave(checker):
    kind, reject = _judge(checker, 'Final answer: {"a": 8, "b": 2}')
    assert (kind, reject["stage"], reject["reason"]) == ("reject", "verify", "wrong_input")
    assert "returned 4" in reject["detail"]


def test_an_input_that_crashes_the_program_is_rejected_as_failed(checker):
    kind, reject = _judge(checker, 'Final answer: {"a": 1, "b": 0}')
    assert (kind, reject["reason"]) == ("reject", "input_failed")
    assert "ValueError" in reject["detail"]


def test_an_answer_that_is_not_an_input_never_reaches_the_sandbox(checker):
    assert _judge(checker, "Final answer: [7, 2]")[1]["reason"] == "bad_input"
    assert _judge(checker, "I think it is seven and two.")[1]["reason"] == "no_final_answer"


def test_the_input_and_rewrite_tasks_need_a_model(tmp_path, capsys):
    for tasks in ("output,input", "rewrite"):
        code = cli.main(["run", "--input", "data/sample.jsonl", "--output", str(tmp_path / "o"),
                         "--tasks", tasks])
        assert code == 2 and "needs an LLM" in capsys.readouterr().err


def test_a_call_format_input_is_an_argument_list_and_may_be_written_as_the_call():
    verdict = proposed_input("<think>…</think>\nFinal answer: `main_solution([1, 2], k=(3,))`",
                             python=True, funcname="main_solution")
    assert verdict.ok and verdict.final_answer == "[1, 2], k=(3,)"
    assert proposed_input("<think>…</think>\nFinal answer: __import__('os')", python=True,
                          funcname="main_solution").reason == "bad_input"


LOOPED = ("def main_solution(a, b):\n    if b == 0:\n        raise ValueError('b must not be 0')\n"
          "    q = 0\n    while a >= b:\n        a -= b\n        q += 1\n    return q\n")


def test_a_rewrite_that_gives_every_output_is_kept_and_becomes_a_new_program(checker):
    rows = _rows(checker, f"Subtract b until a is smaller.\n```python\n{LOOPED}```", "rewrite")
    assert [r["kind"] for r in rows] == ["translation", "example", "rewrite"]
    example = json.loads(rows[1]["payload"])
    assert example["task"] == "rewrite" and "Rewrite this solution" in example["messages"][0]["content"]
    program = json.loads(rows[2]["payload"])
    assert (program["origin_id"], program["origin_problem_id"]) == ("p-0:r", "p")
    parsed = parse_record(json.dumps(program), "rewrites:1")  # a valid input for another run
    assert parsed.refcode == LOOPED and parsed.problem_id == program["problem_id"] != "p"
    assert [(p.input, p.output) for p in parsed.pairs] == [(json.loads(i), json.loads(o))
                                                          for i, o in PAIRS]


def test_a_rewrite_that_differs_on_one_input_is_rejected_naming_it(checker):
    rounded = "def main_solution(a, b):\n    return round(a / b)\n"
    kind, reject = _judge(checker, f"```python\n{rounded}```", "rewrite")
    assert (kind, reject["reason"]) == ("reject", "rewrite_differs")
    assert reject["detail"].startswith('pair 1 of 3, input {"a": 7, "b": 2}: mismatch')


def test_a_rewrite_that_crashes_or_is_no_rewrite_is_rejected_with_the_reason(checker):
    crashing = "def main_solution(a, b):\n    return a // c\n"
    assert _judge(checker, f"```python\n{crashing}```", "rewrite")[1]["reason"] == "rewrite_failed"
    assert _judge(checker, f"```python\n{CODE}```", "rewrite")[1]["reason"] == "same_program"
    assert _judge(checker, "```python\ndef other(a, b):\n    return 1\n```",
                  "rewrite")[1]["reason"] == "bad_program"
    assert _judge(checker, "It can be written with a loop.", "rewrite")[1]["reason"] == "no_program"


@pytest.mark.slow
def test_kept_rewrites_are_written_as_programs_that_another_run_traces(checker, tmp_path, ray_local):
    import ray

    rows = _rows(checker, f"```python\n{LOOPED}```", "rewrite")
    out = tmp_path / "out"
    sink = StreamSink(str(out), ("translation", "example", "reject", "rewrite"), attempt=0)
    ray.data.from_items([{**row, "block": None} for row in rows]).write_datasink(sink)
    assert sink.written == {"translations": 1, "training": 1, "rejects": 0, "rewrites": 1}

    again = run_job(JobConfig(input=str(out / "rewrites"), output=str(tmp_path / "again"),
                              ray=RayConfig(actors=1)), "trace")
    assert again["accounting_ok"] and again["counts"]["trace_filter"]["kept"] == 1
    trace = pq.read_table(next((tmp_path / "again" / "traces").glob("*.parquet"))).to_pylist()[0]
    assert trace["refcode"] == LOOPED and "while a >= b" in trace["trace"]
