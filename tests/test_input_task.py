"""The input task: a model proposes an input for a known output; the sandbox runs it, and only
an input that makes the program return that output is kept (any such input, not only the
original). Model answers here are written by hand; tests/test_translate.py runs the real engine."""

from __future__ import annotations

import json

import pytest

from jobs import cli
from trace_workers.actor import TraceStageConfig
from trace_workers.stats import StageStats
from translate.answer import proposed_input
from translate.export import BuildSettings
from translate.input_check import InputCheckActor
from translate.prompts import training_prompt
from translate.stage import CHECK, VerifySettings, start_input_check
from translate.tasks import TaskSettings, task_items

CODE = ("def main_solution(a, b):\n"
        "    if b == 0:\n"
        "        raise ValueError('b must not be 0')\n"
        "    return a // b\n")
TRACE = {"id": "p-0", "problem_id": "p", "problem_description": "integer division",
         "io_requirements": "", "refcode": CODE, "funcname": "main_solution",
         "input": '{"a": 7, "b": 2}', "returned": "3", "value_format": "json", "trace": "..."}


@pytest.fixture(scope="module")
def checker():
    actor = InputCheckActor(TraceStageConfig(), BuildSettings())
    yield actor
    actor.tracer.close()


def _item() -> dict:
    items = task_items(TRACE, TaskSettings(("input",)), StageStats())
    assert [i["id"] for i in items] == ["p-0:i"]
    return items[0]


def _judge(checker, answer: str) -> tuple[str, dict]:
    """(kind of the last row, its payload) after the verify step and the sandbox check."""
    stats = StageStats()
    row = start_input_check(_item(), f"<think>…</think>\n{answer}", {"translator": "llm"},
                            VerifySettings(), stats)
    rows = [row] if row["kind"] != CHECK else checker.check(row["payload"], stats)
    assert stats.seen["verify"] == 1 and stats.kept["verify"] + sum(stats.rejected["verify"].values()) == 1
    return rows[-1]["kind"], json.loads(rows[-1]["payload"])


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


def test_the_input_task_needs_a_model(tmp_path, capsys):
    code = cli.main(["run", "--input", "data/sample.jsonl", "--output", str(tmp_path / "o"),
                     "--tasks", "output,input"])
    assert code == 2 and "needs an LLM" in capsys.readouterr().err


def test_a_call_format_input_is_an_argument_list_and_may_be_written_as_the_call():
    verdict = proposed_input("<think>…</think>\nFinal answer: `main_solution([1, 2], k=(3,))`",
                             python=True, funcname="main_solution")
    assert verdict.ok and verdict.final_answer == "[1, 2], k=(3,)"
    assert proposed_input("<think>…</think>\nFinal answer: __import__('os')", python=True,
                          funcname="main_solution").reason == "bad_input"
