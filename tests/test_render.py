"""The LLM-free translator: readable steps whose every value comes from the trace, and a final
answer that is the value the program returned."""

from __future__ import annotations

import json

import pytest
from conftest import run_code

from trace_workers.actor import Tracer, TraceStageConfig
from trace_workers.raw_filter import RawFilterConfig, filter_program
from trace_workers.records import ProgramWork, parse_record
from trace_workers.stats import StageStats
from translate.answer import verify
from translate.render import render_steps
from translate.tasks import TaskSettings, expected_answer, render_reasoning, task_items

GCD = "def main_solution(a, b):\n    while b:\n        a, b = b, a % b\n    return abs(a)\n"


def _row(code: str, kwargs: dict, traced: dict) -> dict:
    return {"input": json.dumps(kwargs), "returned": traced["returned"], "trace": traced["trace"],
            "refcode": code, "funcname": "main_solution"}


def test_a_loop_is_told_step_by_step_with_the_values_of_the_run(sandbox):
    traced = run_code(sandbox, GCD, {"a": 48, "b": 18})
    steps = render_steps(traced["trace"], GCD)
    assert steps[0] == "We call `main_solution` with `a` = 48 and `b` = 18."
    assert "Line 2: we check `b`: it holds, so the loop body runs." in steps
    assert "Line 3: `a, b = b, a % b`, so `a` becomes 18 and `b` becomes 12." in steps
    assert "Line 2: we check `b`: it no longer holds, so the loop ends." in steps
    assert steps[-1] == "`main_solution` returns 6."


def test_branches_say_which_way_they_went(sandbox):
    code = ("def main_solution(n):\n    if n > 5:\n        kind = 'big'\n    else:\n"
            "        kind = 'small'\n    return kind\n")
    steps = render_steps(run_code(sandbox, code, {"n": 3})["trace"], code)
    assert "Line 2: we check `n > 5`: it is false, so we skip its block." in steps
    assert "Line 5: `kind = 'small'`." in steps


def test_nested_calls_return_to_their_caller(sandbox):
    code = ("def double(x):\n    return 2 * x\n\ndef main_solution(n):\n    y = double(n)\n"
            "    return y + 1\n")
    steps = render_steps(run_code(sandbox, code, {"n": 4}, depth=2)["trace"], code)
    assert "We call `double` with `x` = 4." in steps
    assert "`double` returns 8, and we are back in `main_solution`." in steps
    assert "Line 5: `y = double(n)`, so `y` is set to 8." in steps


def test_comprehensions_are_summarised(sandbox):
    code = "def main_solution(xs):\n    squares = [x * x for x in xs]\n    return squares\n"
    steps = render_steps(run_code(sandbox, code, {"xs": [1, 2, 3]})["trace"], code)
    assert any(s.startswith("A list comprehension runs") and "[1, 4, 9]" in s for s in steps)


def test_the_reasoning_ends_on_the_full_returned_value(sandbox):
    code = "def main_solution(n):\n    return {'n': n, 'halves': [n / 2, n / 4], 'ok': True}\n"
    traced = run_code(sandbox, code, {"n": 3})
    text = render_reasoning(_row(code, {"n": 3}, traced))
    assert text.endswith('Final answer: {"n": 3, "halves": [1.5, 0.75], "ok": true}')
    assert "trace" not in text.lower()  # the reasoning never mentions the trace


@pytest.mark.slow
def test_every_kept_dev_trace_renders_to_reasoning_that_verifies(dev_records):
    """On real PyEdu programs: the renderer's final answer equals the returned value, and each
    variable question's answer, always."""
    tracer = Tracer(TraceStageConfig())
    stats = StageStats()
    kept = questions = 0
    try:
        for index, record in enumerate(dev_records[::6]):
            program = parse_record(json.dumps(record), f"dev:{index}")
            for row in filter_program(program, RawFilterConfig(ios_per_program=2), stats):
                if row["kind"] != "program":
                    continue
                for out in tracer.trace_program(ProgramWork.from_payload(row["payload"]), stats):
                    if out["kind"] != "trace":
                        continue
                    trace = json.loads(out["payload"])
                    for item in task_items(trace, TaskSettings(("output", "variable"), 3), stats):
                        expected, python = expected_answer(item)
                        verdict = verify(render_reasoning(item), expected, thinking=False,
                                         python=python)
                        assert verdict.ok, (item["id"], verdict.reason, verdict.detail)
                        questions += item["task"] == "variable"
                    kept += 1
    finally:
        tracer.close()
    assert kept >= 60 and questions >= kept
