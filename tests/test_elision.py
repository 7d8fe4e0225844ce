"""Runs too long to record whole, recorded with elision: what the spans say is what the run did.

Each program runs in the real sandbox past a small run budget; what a span states (the
iterations it left out, the values a loop leaves, a call's return, the calls not followed) is
held to the same program run here in plain Python, without any tracer.
"""

from __future__ import annotations

import json
import re

import pytest

from jobs.manifest import story_summary
from jobs.report import stories_section
from trace_workers.actor import Tracer, TraceStageConfig
from trace_workers.jail.elision import CALL_DEPTH, CALLS_TRACED, LOOP_HEAD
from trace_workers.jail.sandbox import Sandbox, SandboxLimits, SandboxSettings
from trace_workers.records import ProgramWork, Run
from trace_workers.stats import StageStats
from translate.digest import digest
from translate.render import render_steps
from translate.steps import check_steps
from translate.trace_model import SPAN, UNTRACED, parse_trace

BUDGET = 400  # the run budget: every program below passes it many times over
LOOP_SPAN = re.compile(r"~~~ loop at line (\d+): iterations (\d+) to (\d+) not traced")


@pytest.fixture(scope="module")
def jail():
    with Sandbox(SandboxSettings(limits=SandboxLimits(max_run_lines=BUDGET, timeout_s=10.0),
                                 preload=())) as box:
        yield box


def run(box: Sandbox, code: str, kwargs: dict, depth: int = 1) -> dict:
    verdict = box.run(code, "main_solution", json.dumps(kwargs), depth)
    assert verdict["status"] == "returned", verdict
    assert verdict.get("elision") == "returned" and verdict["trace_lines"] < BUDGET
    return verdict


def plain(code: str, kwargs: dict):
    namespace: dict = {}
    exec(compile(code, "program", "exec"), namespace)
    return namespace["main_solution"](**kwargs)


def values_after(trace: str, span_line: str) -> dict[str, str]:
    """The values printed right after a span's line: the ones it leaves."""
    lines = trace.split("\n")
    at = next(n for n, line in enumerate(lines) if span_line in line)
    values = {}
    for line in lines[at + 1:]:
        m = re.match(r"^\s*\.{3,} (\w+) = (.*)$", line)
        if not m:
            break
        values[m.group(1)] = m.group(2)
    return values


def told_and_checked(verdict: dict, code: str) -> None:
    """The digest folds every span, the renderer tells it, and every step it states is right
    against the run (with its "Line N:" anchors and without)."""
    told = digest(verdict["trace"], code, 300)
    assert told is not None and told.level > 0
    spans = [n for n, e in enumerate(told.trace.events) if e.kind == SPAN]
    assert all(any(f.start <= n < f.end for f in told.folds) for n in spans)
    text = "\n".join(render_steps(verdict["trace"], code, told.level))
    result = check_steps(text, verdict["trace"], code)
    assert result.wrong == "" and result.checked > 0, result
    bare = re.sub(r"(?m)^Line \d+: ", "", text)
    assert check_steps(bare, verdict["trace"], code).wrong == ""


SQUARES = """\
def main_solution(n):
    total = 0
    seen = []
    for i in range(n):
        total += i * i
        if i % 7 == 0:
            seen.append(i)
    return [total, len(seen)]
"""


def test_a_long_loop_keeps_its_first_iterations_and_one_span_with_the_values_it_leaves(jail):
    verdict = run(jail, SQUARES, {"n": 5000})
    spans = LOOP_SPAN.findall(verdict["trace"])
    assert spans == [("4", str(LOOP_HEAD + 1), "5000")]
    assert verdict["trace"].count("    5 |         total += i * i") == LOOP_HEAD
    after = values_after(verdict["trace"], "~~~ loop at line 4")
    total, _ = plain(SQUARES, {"n": 5000})
    assert after["total"] == str(total) and after["i"] == "4999"
    assert json.loads(verdict["returned"]) == plain(SQUARES, {"n": 5000})
    assert verdict["elided"] == {"loops": 1, "iterations": 5000 - LOOP_HEAD, "calls": 0}
    told_and_checked(verdict, SQUARES)


NESTED_WITH_BREAK = """\
def main_solution(n, stop):
    count = 0
    for i in range(n):
        j = 0
        while True:
            j += 1
            if (i * j) % stop == stop - 1 or j > 300:
                break
            count += 1
    return count
"""


def counts_of_inner_runs(n: int, stop: int) -> list[int]:
    """How many times the while loop's body ran for each i (iterations, break included): the
    first j that breaks it, found by search rather than by running the loop again."""
    return [next((j for j in range(1, 301) if (i * j) % stop == stop - 1), 301)
            for i in range(n)]


def test_nested_loops_span_from_the_inside_out_and_a_break_ends_a_span(jail):
    kwargs = {"n": 400, "stop": 53}
    verdict = run(jail, NESTED_WITH_BREAK, kwargs)
    spans = LOOP_SPAN.findall(verdict["trace"])
    inner = counts_of_inner_runs(**kwargs)
    # the while loop's runs past LOOP_HEAD iterations in the first outer iterations, then
    # the outer loop's rest
    expected = [("5", str(LOOP_HEAD + 1), str(c)) for c in inner[:LOOP_HEAD] if c > LOOP_HEAD]
    assert spans == expected + [("3", str(LOOP_HEAD + 1), str(kwargs["n"]))]
    assert values_after(verdict["trace"], "~~~ loop at line 3")["count"] == str(
        plain(NESTED_WITH_BREAK, kwargs))
    told_and_checked(verdict, NESTED_WITH_BREAK)


RECURSIVE = """\
def main_solution(n):
    if n < 2:
        return n
    return main_solution(n - 1) + main_solution(n - 2)
"""


def test_deep_recursion_is_told_by_the_returns_of_its_calls(jail):
    verdict = run(jail, RECURSIVE, {"n": 22})
    model = parse_trace(verdict["trace"])
    spans = [e for e in model.events if e.kind == SPAN]
    assert spans and verdict["elided"]["calls"] == len(spans)
    depth_of = {e.frame: e.depth for e in model.events if e.kind == "call"}
    for span in spans:
        call = next(e for e in model.events if e.kind == "call" and e.frame == span.frame)
        ret = next(e for e in model.events if e.kind == "return" and e.frame == span.frame)
        argument = int(call.changes[0].text)
        assert int(ret.value) == plain(RECURSIVE, {"n": argument})
        assert depth_of[span.frame] == CALL_DEPTH + 1  # the first call past the depth
    assert verdict["returned"] == str(plain(RECURSIVE, {"n": 22}))
    told_and_checked(verdict, RECURSIVE)


MANY_CALLS = """\
def is_prime(k):
    if k < 2:
        return False
    d = 2
    while d * d <= k:
        if k % d == 0:
            return False
        d += 1
    return True

def main_solution(n):
    primes = [k for k in range(n) if is_prime(k)]
    return len(primes)
"""


def test_a_comprehension_calling_a_function_many_times_says_how_many_calls_it_left(jail):
    verdict = run(jail, MANY_CALLS, {"n": 3000}, depth=2)
    model = parse_trace(verdict["trace"])
    untraced = [e for e in model.events if e.kind == UNTRACED]
    traced = [e for e in model.events if e.kind == "call" and e.name == "is_prime"]
    assert len(traced) == CALLS_TRACED and len(untraced) == 1
    assert len(traced) + untraced[0].count == 3000  # one call of is_prime an item
    assert verdict["returned"] == str(plain(MANY_CALLS, {"n": 3000}))
    told_and_checked(verdict, MANY_CALLS)


def test_a_run_within_the_budget_is_traced_as_without_elision(jail):
    short = jail.run(SQUARES, "main_solution", json.dumps({"n": 20}), 1)
    with Sandbox(SandboxSettings(limits=SandboxLimits(max_run_lines=BUDGET, elide=False),
                                 preload=())) as plain_box:
        reference = plain_box.run(SQUARES, "main_solution", json.dumps({"n": 20}), 1)
    assert short["status"] == "returned" and "elision" not in short
    assert short["trace"] == reference["trace"]


def test_a_run_too_slow_even_with_elision_is_a_timeout_that_says_it_was_over_the_budget():
    code = "def main_solution():\n    i = 0\n    while True:\n        i += 1\n"
    with Sandbox(SandboxSettings(limits=SandboxLimits(max_run_lines=BUDGET, timeout_s=1.0),
                                 preload=())) as box:
        verdict = box.run(code, "main_solution", "{}", 1)
    assert (verdict["status"], verdict["elision"]) == ("timeout", "timeout")
    # (over the budget by the dry run, or by the trace where a loaded machine abandoned it)
    assert verdict["detail"].endswith("traced with its long loops and deep calls elided, it "
                                      "passed 0.5 s")


def work(code: str, inputs: list[dict]) -> ProgramWork:
    runs = [Run(f"p-{i}", json.dumps(kwargs), json.dumps(plain(code, kwargs)))
            for i, kwargs in enumerate(inputs)]
    return ProgramWork("p", "", "", code, "main_solution", 1, "stdlib", runs)


def trace_program(program: ProgramWork) -> tuple[list[dict], StageStats]:
    stats = StageStats()
    tracer = Tracer(TraceStageConfig(limits=SandboxLimits(max_run_lines=BUDGET, timeout_s=10.0)))
    try:
        return tracer.trace_program(program, stats), stats
    finally:
        tracer.close()


def kinds_of(rows: list[dict]) -> dict[str, tuple[str, str | None]]:
    payloads = [(row["kind"], json.loads(row["payload"])) for row in rows]
    return {p["id"]: (kind, p.get("reason")) for kind, p in payloads}


def test_elision_is_only_for_a_problem_none_of_whose_runs_fits_the_budget():
    # the first input is over the budget, the second fits: the second is kept, told whole,
    # and nothing is traced with elision
    rows, stats = trace_program(work(SQUARES, [{"n": 5000}, {"n": 20}, {"n": 30}]))
    assert kinds_of(rows) == {"p-0": ("reject", "trace_limit"), "p-1": ("trace", None),
                     "p-2": ("reject", "not_sampled")}
    assert "elisions" not in stats.details
    # every input over the budget: the first is traced with elision and kept; the second,
    # which ran over the budget, stays what it was
    rows, stats = trace_program(work(SQUARES, [{"n": 5000}, {"n": 6000}]))
    assert kinds_of(rows) == {"p-0": ("trace", None), "p-1": ("reject", "trace_limit")}
    assert stats.details["elisions"] == {"returned": 1}
    kept = json.loads(next(row for row in rows if row["kind"] == "trace")["payload"])
    assert kept["story_level"] > 0 and "~~~ loop at line 4" in kept["trace"]
    # the manifest and the report count what was recorded with elision
    summary = story_summary(stats)
    assert summary["elided"] == {"kept_traces": 1, "loop_spans": 1,
                                 "iterations": 5000 - LOOP_HEAD, "call_spans": 0}
    html = stories_section({"stories": summary, "config": {"trace": {"max_trace_lines": 300}}})
    assert "1 of them ran past the run budget" in html
