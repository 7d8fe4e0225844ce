"""How the trace actor spends its time on a program's runs: which runs get a dry run."""

from __future__ import annotations

import json

import pytest

from trace_workers.actor import Tracer, TraceStageConfig
from trace_workers.jail.sandbox import Sandbox, SandboxLimits
from trace_workers.records import ProgramWork, Run
from trace_workers.stats import StageStats


@pytest.fixture
def dry_runs_asked(monkeypatch):
    """The real sandbox, watched: (dry_run asked for, the dry run's outcome) per run."""
    seen: list[tuple[bool, str | None]] = []
    real_run = Sandbox.run

    def watched(self, *args, dry_run: bool = True, **kwargs):
        verdict = real_run(self, *args, dry_run=dry_run, **kwargs)
        seen.append((dry_run, verdict.get("dry_run")))
        return verdict

    monkeypatch.setattr(Sandbox, "run", watched)
    return seen


def work(code: str, inputs: list[dict], expected: list) -> ProgramWork:
    runs = [Run(f"p-{i}", json.dumps(kwargs), json.dumps(out))
            for i, (kwargs, out) in enumerate(zip(inputs, expected, strict=True))]
    return ProgramWork("p", "", "", code, "main_solution", 1, "stdlib", runs)


def trace_all(program: ProgramWork, timeout_s: float = 2.0, elide: bool = False,
              **config) -> list[dict]:
    """Every run of ``program`` through the trace actor; without elision unless asked (these
    tests are about which runs get a dry run: a runaway stays a trace_limit reject)."""
    tracer = Tracer(TraceStageConfig(trace_all=True, samples_per_problem=0,
                                     limits=SandboxLimits(timeout_s=timeout_s, elide=elide),
                                     **config))
    try:
        return tracer.trace_program(program, StageStats())
    finally:
        tracer.close()


@pytest.mark.alone  # a time limit raced: a busy machine decides it
def test_a_slow_programs_runs_skip_the_dry_run_once_one_ran_out_of_time(dry_runs_asked):
    # 0.3 s of sleep: past the dry run's share (a tenth of the 2 s limit), short trace
    code = ("import time\n\ndef main_solution(n):\n    time.sleep(0.3)\n    for i in range(n):\n"
            "        n += i\n    return n\n")
    rows = trace_all(work(code, [{"n": 40}] * 3, [820] * 3))
    assert [row["kind"] for row in rows] == ["trace"] * 3
    assert dry_runs_asked == [(True, "abandoned"), (False, None), (False, None)]


@pytest.mark.alone  # the dry run races its share of the limit: a loaded machine abandoned it
def test_runaways_keep_their_dry_run_and_a_run_after_one_that_fitted_skips_it(dry_runs_asked):
    code = "def main_solution(n):\n    i = 0\n    while i < n:\n        i += 1\n    return i\n"
    # a 10 s limit: the dry run's tenth of it is far more than counting the run budget's lines
    # takes, even on a busy machine (a 2 s limit left it 0.2 s, and CI's load abandoned one);
    # no streak: a busy machine's slow dry runs would otherwise end the program early (the
    # streak has tests of its own below)
    runaway = trace_all(work(code, [{"n": 10**7}] * 3, [10**7] * 3), timeout_s=10.0,
                        trace_limit_streak=0)
    assert {json.loads(row["payload"])["reason"] for row in runaway} == {"trace_limit"}
    assert dry_runs_asked == [(True, "over_budget")] * 3
    dry_runs_asked.clear()
    mixed = trace_all(work(code, [{"n": 2}, {"n": 3}, {"n": 10**7}, {"n": 4}], [2, 3, 10**7, 4]),
                      timeout_s=10.0, trace_limit_streak=0)
    # after a fitting run the next goes straight to snoop, whose line budget stops a runaway;
    # after that runaway the dry run is back
    assert [row["kind"] for row in mixed] == ["trace", "trace", "reject", "trace"]
    assert dry_runs_asked == [(True, "fits"), (False, None), (False, None), (True, "fits")]


SLOW_RUNAWAY = ("import time\n\ndef main_solution(n):\n    time.sleep(0.4)\n    i = 0\n"
                "    while i < n:\n        i += 1\n    return i\n")


@pytest.mark.alone  # a time limit raced: a busy machine decides it
def test_a_program_slow_to_pass_the_line_budget_twice_in_a_row_is_not_run_to_the_end():
    rows = trace_all(work(SLOW_RUNAWAY, [{"n": 10**6}] * 5, [10**6] * 5))
    reasons = [json.loads(row["payload"])["reason"] for row in rows]
    assert reasons == ["trace_limit"] * 2 + ["trace_limit_streak"] * 3
    assert "none of its runs returned" in json.loads(rows[-1]["payload"])["detail"]


@pytest.mark.alone  # a time limit raced: a busy machine decides it
def test_the_streak_spares_a_program_that_returned_and_runs_that_pass_the_budget_fast():
    returned_first = trace_all(work(SLOW_RUNAWAY, [{"n": 3}] + [{"n": 10**6}] * 4,
                                    [3] + [10**6] * 4))
    assert [row["kind"] for row in returned_first] == ["trace"] + ["reject"] * 4
    assert {json.loads(row["payload"])["reason"] for row in returned_first[1:]} == {"trace_limit"}
    fast = "def main_solution(n):\n    i = 0\n    while i < n:\n        i += 1\n    return i\n"
    runaways = trace_all(work(fast, [{"n": 10**6}] * 4, [10**6] * 4))
    assert {json.loads(row["payload"])["reason"] for row in runaways} == {"trace_limit"}
