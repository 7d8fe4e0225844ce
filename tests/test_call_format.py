"""Bring your own programs: a function, a Python-literal argument list and the literal of the
result (CRUXEval-style records), traced in the sandbox and compared as Python values."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT

from jobs import cli
from trace_workers.actor import Tracer, TraceStageConfig
from trace_workers.canonical import python_values_match
from trace_workers.raw_filter import RawFilterConfig, filter_program
from trace_workers.records import ProgramWork, parse_call_arguments, parse_record
from trace_workers.stats import StageStats
from trace_workers.stream import Reject
from translate.answer import verify
from translate.tasks import render_reasoning, training_prompt


def call(code: str, arguments: str, output: str, **extra) -> str:
    return json.dumps({"code": code, "input": arguments, "output": output, **extra})


CASES = {
    "tuples": call("def f(a, b):\n    return (b, a)\n", "(1, ), (1, 2)", "((1, 2), (1,))"),
    "sets": call("def f(xs):\n    return set(xs) - {2}\n", "[1, 2, 3, 3]", "{1, 3}"),
    "nested dicts with int keys": call(
        "def f(d):\n    return {k: {'sq': v * v} for k, v in d.items()}\n",
        "{1: 2, 3: 4}", "{1: {'sq': 4}, 3: {'sq': 16}}"),
    "quotes and newlines": call("def f(s):\n    return s.replace('\"', \"'\") + '\\n'\n",
                                "'say \"hi\"\\nnow'", "\"say 'hi'\\nnow\\n\""),
    "keyword arguments": call("def f(x, *, scale=1, shift=0):\n    return x * scale + shift\n",
                              "4, scale=3, shift=-1", "11"),
    "default arguments": call("def f(x, n=2):\n    return [x] * n\n", "'ab'", "['ab', 'ab']"),
    "methods on built-ins": call("def f(text):\n    return text.strip().title().split()\n",
                                 "'  hello big world '", "['Hello', 'Big', 'World']"),
    "floats": call("def f(a, b):\n    return a / b\n", "1, 3", "0.3333333333333333"),
    "entry among several": call(
        "def helper(x):\n    return x + 1\n\ndef main(x):\n    return helper(x) * 2\n",
        "5", "12", entry="main"),
}


@pytest.fixture(scope="module")
def tracer():
    t = Tracer(TraceStageConfig())
    yield t
    t.close()


def trace_one(tracer: Tracer, line: str) -> tuple[list[dict], StageStats]:
    stats = StageStats()
    parsed = parse_record(line, "test:1")
    if isinstance(parsed, Reject):
        return [parsed.row()], stats
    rows = []
    for row in filter_program(parsed, RawFilterConfig(), stats):
        if row["kind"] == "program":
            rows += tracer.trace_program(ProgramWork.from_payload(row["payload"]), stats)
        else:
            rows.append(row)
    return rows, stats


@pytest.mark.parametrize("name", list(CASES))
def test_call_records_are_traced_and_compared_as_python_values(tracer, name):
    rows, _ = trace_one(tracer, CASES[name])
    kept = [json.loads(r["payload"]) for r in rows if r["kind"] == "trace"]
    assert len(kept) == 1, rows
    trace = kept[0]
    assert trace["value_format"] == "python" and "<<< Return value from" in trace["trace"]
    # the renderer's reasoning ends on the Python literal, and the verifier agrees
    assert verify(render_reasoning(trace), trace["returned"], thinking=False, python=True).ok


def test_a_tuple_is_not_a_list_for_the_call_format(tracer):
    rows, stats = trace_one(tracer, call("def f():\n    return (1, 2)\n", "", "[1, 2]"))
    assert stats.rejected["trace"] == {"mismatch": 1}
    assert python_values_match((1, 2), (1, 2)) and not python_values_match((1, 2), [1, 2])
    assert python_values_match({1: 0.1 + 0.2}, {1: 0.3}) and not python_values_match({1: 1}, {"1": 1})


@pytest.mark.parametrize("output, reason", [
    ("ValueError('negative')", "expected_exception"),
    ("Traceback (most recent call last): ...", "expected_exception"),
    ("<object at 0x1>", "bad_expected_output"),
])
def test_expected_exceptions_and_non_literals_are_rejected_with_a_reason(tracer, output, reason):
    _, stats = trace_one(tracer, call("def f(x):\n    return x\n", "1", output))
    assert stats.rejected["pair_filter"] == {reason: 1}


@pytest.mark.parametrize("arguments", ["__import__('os').system('id')", "*[1, 2]", "1,, 2",
                                       "random.random()", "eval('1')", "().__class__"])
def test_arguments_that_are_not_plain_calls_or_may_run_hidden_code_are_rejected(tracer, arguments):
    with pytest.raises(ValueError):
        parse_call_arguments(arguments)
    _, stats = trace_one(tracer, call("def f(*a):\n    return 0\n", arguments, "0"))
    assert stats.rejected["pair_filter"] == {"bad_arguments": 1}


EXPRESSIONS = {  # arguments as real benchmarks write them: evaluated in the jail
    "a call of a builtin": ("def f(d):\n    return sorted(d)\n", "dict(b=1, a=2)", "['a', 'b']"),
    "string arithmetic": ("def f(s):\n    return len(s)\n", "''.join(['A'] * 20)", "20"),
    "a lambda": ("def f(g, x):\n    return g(x)\n", "lambda v: v * 3, 4", "12"),
    "concatenation": ("def f(s):\n    return s.upper()\n", "'ab' + 'c'", "'ABC'"),
    "a name the program defines": ("table = [3, 1, 2]\n\ndef f(t):\n    t.sort()\n    return t\n",
                                   "table[:]", "[1, 2, 3]"),
}


@pytest.mark.parametrize("name", list(EXPRESSIONS))
def test_arguments_that_are_expressions_run_in_the_jail_and_show_as_written(tracer, name):
    code, arguments, output = EXPRESSIONS[name]
    rows, stats = trace_one(tracer, call(code, arguments, output))
    kept = [json.loads(r["payload"]) for r in rows if r["kind"] == "trace"]
    assert len(kept) == 1, rows
    trace = kept[0]
    assert trace["input"] == arguments  # as written, in the trace row and the prompt
    assert f"f({arguments})" in training_prompt(trace)
    assert verify(render_reasoning(trace), trace["returned"], thinking=False, python=True).ok


def test_an_expression_argument_that_fails_is_a_trace_error_not_the_end_of_the_job(tracer):
    _, stats = trace_one(tracer, call("def f(x):\n    return x\n", "undefined_name + 1", "0"))
    assert stats.rejected["trace"] == {"error": 1}


def test_an_expression_argument_is_evaluated_in_the_jail_not_on_the_host(tracer, tmp_path):
    marker = tmp_path / "written-by-an-argument"
    arguments = f"open({str(marker)!r}, 'w').write('x')"
    rows, stats = trace_one(tracer, call("def f(n):\n    return n\n", arguments, "1"))
    assert not marker.exists()  # the host's folder is not the jail's
    assert stats.kept.get("trace", 0) == 0


def test_a_function_that_raises_is_an_error_not_an_output(tracer):
    rows, stats = trace_one(tracer, call("def f(x):\n    raise ValueError(x)\n", "1", "None"))
    assert stats.rejected["trace"] == {"error": 1}


def test_the_record_id_is_the_problem_id_and_the_question_comes_from_the_signature(tracer):
    rows, _ = trace_one(tracer, call("def scale(x, k=2):\n    return x * k\n", "3", "6", id="my-7"))
    trace = json.loads(next(r["payload"] for r in rows if r["kind"] == "trace"))
    assert (trace["problem_id"], trace["id"]) == ("my-7", "my-7-0")
    prompt = training_prompt(trace)
    assert "What does the function `def scale(x, k=2)` return" in prompt
    assert "scale(3)" in prompt and "written as a Python literal" in prompt


@pytest.mark.slow
def test_the_worked_example_in_data_runs_through_the_cli(tmp_path, ray_local):
    out = tmp_path / "out"
    assert cli.main(["run", "--input", str(ROOT / "data" / "calls.jsonl"), "--output", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"] and manifest["written"]["training"] == 3
