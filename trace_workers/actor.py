"""The trace stage's Ray Data actor: programs in, kept traces and rejects out.

Each actor owns three jails (``JAILS``), each started on first need: one with the standard
library only for the programs that import nothing else (the cheapest forks), one with numpy,
and a full one (sympy, networkx, scipy, pandas, z3 as well) for the few programs that import
those; ``raw_filter.jail_for`` chooses. Runs of a program are tried in their seeded order; with
``samples_per_problem = k`` the actor stops after the first k runs that pass the trace filter
(a uniform seeded sample of the passing runs, at a fraction of the cost) unless ``trace_all``.
"""

from __future__ import annotations

import ast
import json
import resource
from dataclasses import dataclass, field

import pyarrow as pa

from trace_workers.canonical import python_values_match, values_match
from trace_workers.jail.sandbox import DEFAULT_PRELOAD, Sandbox, SandboxLimits, SandboxSettings
from trace_workers.raw_filter import jail_for, snoop_depth
from trace_workers.records import ProgramWork, Run, parse_literal_output
from trace_workers.stats import BlockStats, StageStats
from trace_workers.stream import PROGRAM, TRACE, map_stream, reject, row
from trace_workers.trace_filter import trace_problem
from translate.digest import Digest, digest

# jail name -> the libraries its zygote imports once (snoop always)
JAILS = {"stdlib": (), "numpy": ("numpy",), "full": DEFAULT_PRELOAD}
# zygote statuses that become rejects under their own name
FAILED_STATUSES = ("error", "timeout", "memory", "trace_limit", "crashed", "sandbox")


@dataclass
class TraceStageConfig:
    samples_per_problem: int = 1
    trace_all: bool = False
    float_rel_tol: float = 1e-6
    timeout_streak: int = 2  # after this many timeouts in a row, skip the program's other runs
    # after this many runs in a row passed the line budget, each after trace_limit_streak_s of
    # sandbox time or more, skip the program's other runs (unless one of its runs returned)
    trace_limit_streak: int = 2
    trace_limit_streak_s: float = 0.3
    # the story budget: a kept trace is told (renderer, prompt) in fewer lines than this,
    # folded where it is longer (translate.digest); the run budget is limits.max_run_lines
    max_trace_lines: int = 300
    limits: SandboxLimits = field(default_factory=SandboxLimits)


class Tracer:
    """Traces programs in sandboxes; plain Python, usable without Ray."""

    def __init__(self, cfg: TraceStageConfig):
        self.cfg = cfg
        self.jails = {name: Sandbox(SandboxSettings(limits=cfg.limits, preload=preload))
                      for name, preload in JAILS.items()}
        self.jails["stdlib"].start()  # fails early when the sandbox cannot start at all

    def close(self) -> None:
        for jail in self.jails.values():
            jail.close()

    def trace_program(self, work: ProgramWork, stats: StageStats) -> list[dict]:
        sandbox = self.jails[work.jail]
        quota = self.cfg.samples_per_problem if not self.cfg.trace_all else 0
        rows: list[dict] = []
        kept = 0
        skip_reason: tuple[str, str] | None = None
        timeouts_in_a_row = slow_limits_in_a_row = 0
        returned = False
        # The dry run only saves time on a runaway. A run whose program's previous run
        # returned within the budget skips it (a runaway's input then costs snoop's 300
        # lines, the budget still stops it, and the next run has a dry run again); so do all
        # runs once one dry run ran out of its share of the time limit (a slow program would
        # pay that share again on every run, for nothing).
        previous_fit = dry_run_abandoned = False
        # Runs over the run budget wait for a second pass (held), traced with elision
        # (SandboxLimits.elide) only while the problem has no kept trace: a run that fits
        # the budget is cheaper and told whole, and a problem with one keeps what it had.
        held: list[tuple[Run, str]] = []
        for run in work.runs:
            stats.see("trace")
            if skip_reason or (quota and kept >= quota):
                reason, detail = skip_reason or (
                    "not_sampled", f"problem already has {kept} kept trace(s)")
                rows.append(reject(stats, "trace", reason, run.id, work.problem_id, detail))
                continue
            verdict = sandbox.run(work.refcode, work.funcname, run.input, work.depth,
                                  call_format=work.call_format,
                                  dry_run=not (previous_fit or dry_run_abandoned), elide=False)
            dry_run_abandoned = dry_run_abandoned or verdict.get("dry_run") == "abandoned"
            previous_fit = verdict["status"] == "returned"
            stats.note("dry_runs", verdict.get("dry_run", "skipped"))
            status, reason, detail = self._executed(verdict, run, work, stats)
            if reason == "missing_module":
                stats.note("missing_modules", str(verdict.get("module")))
                # every other run of this program would fail the same way
                skip_reason = (reason, detail)
            timeouts_in_a_row = timeouts_in_a_row + 1 if status == "timeout" else 0
            if self.cfg.timeout_streak and timeouts_in_a_row >= self.cfg.timeout_streak:
                # Each costs the full limit; a program that timed out on several inputs in a
                # row nearly always does on the rest (dev set: 37 of its 41 timeouts).
                skip_reason = ("timeout_streak", f"not run: {timeouts_in_a_row} runs of this "
                               "program in a row timed out")
            returned = returned or verdict["status"] == "returned"
            slow_limits_in_a_row = slow_limits_in_a_row + 1 if (
                status == "trace_limit" and not returned
                and verdict.get("elapsed_s", 0.0) >= self.cfg.trace_limit_streak_s) else 0
            if self.cfg.trace_limit_streak and slow_limits_in_a_row >= self.cfg.trace_limit_streak:
                # A program that computes for long before (or between) the lines of a trace
                # that passes the budget does so on nearly every input (dev set: 4 programs,
                # 40 runs, ~1 s each, none returned); one that returned on some input does not.
                skip_reason = ("trace_limit_streak", (
                    f"not run: {slow_limits_in_a_row} runs of this program in a row passed the "
                    f"trace budget, each after {self.cfg.trace_limit_streak_s} s or more, "
                    "and none of its runs returned"))
            if status == "trace_limit" and self.cfg.limits.elide and self.cfg.limits.fast_tracer:
                held.append((run, detail))
                continue
            kept += self._settle(work, run, verdict, (status, reason, detail), stats, rows)
        # The second pass: the held runs traced with elision, in order, until the problem
        # has its traces; once one runs out of time the rest stay over the budget.
        timed_out = False
        for run, detail in held:
            if timed_out or (quota and kept >= quota):
                rows.append(reject(stats, "trace", "trace_limit", run.id, work.problem_id, detail))
                continue
            verdict = sandbox.run(work.refcode, work.funcname, run.input, work.depth,
                                  call_format=work.call_format, elided=True)
            stats.note("elisions", verdict.get("elision", verdict["status"]))
            timed_out = verdict.get("elision") == "timeout"
            judged = self._executed(verdict, run, work, stats)
            kept += self._settle(work, run, verdict, judged, stats, rows)
        return self._sample_kept(rows, work, stats) if self.cfg.trace_all else rows

    def _executed(self, verdict: dict, run: Run, work: ProgramWork,
                  stats: StageStats) -> tuple[str, str, str]:
        """Count an executed run and judge its verdict: (status, reject reason, detail)."""
        stats.note("runs", "executed")
        stats.time("sandbox_s", verdict.get("elapsed_s", 0.0))
        return self._judge(verdict, run, work.call_format)

    def _settle(self, work: ProgramWork, run: Run, verdict: dict,
                judged: tuple[str, str, str], stats: StageStats, rows: list[dict]) -> int:
        """The row of a judged run: a reject, or the kept trace (through the trace filter and
        the digest). Returns 1 when it is kept."""
        status, reason, detail = judged
        if status != "ok":
            rows.append(reject(stats, "trace", reason, run.id, work.problem_id, detail))
            return 0
        stats.keep("trace")
        stats.see("trace_filter")
        problem = trace_problem(verdict["trace"], work.funcname, self.cfg.limits.max_run_lines)
        told = None if problem else digest(verdict["trace"], work.refcode,
                                           self.cfg.max_trace_lines)
        if told is None and not problem:
            problem = ("story_too_long", f"{verdict['trace_lines']} lines, and told with its "
                       f"loops and calls folded still {self.cfg.max_trace_lines} lines or "
                       "more (--max-trace-lines)")
        if problem:
            rows.append(reject(stats, "trace_filter", problem[0], run.id, work.problem_id, problem[1]))
            return 0
        stats.keep("trace_filter")
        note_story(stats, told)
        if verdict.get("elided"):  # recorded with spans (trace_workers.jail.elision)
            stats.note("elided_traces", "kept")
            for what, count in verdict["elided"].items():
                stats.note("elided_traces", what, count)
        rows.append(row(TRACE, {**self._trace_row(work, run, verdict),
                                "story_lines": told.told_lines, "story_level": told.level}))
        return 1

    def check(self, code: str, funcname: str, input_text: str, expected_output: str,
              call_format: bool = False) -> tuple[str, str, str]:
        """Run ``funcname`` on an input from elsewhere (a model's proposal) in the sandbox:
        (status, reject reason, detail), status ``ok`` when it returns the expected output."""
        tree = ast.parse(code)
        sandbox = self.jails[jail_for(tree)]
        verdict = sandbox.run(code, funcname, input_text, snoop_depth(tree), call_format=call_format)
        return self._judge(verdict, Run("check", input_text, expected_output), call_format)

    def _judge(self, verdict: dict, run: Run, call_format: bool = False) -> tuple[str, str, str]:
        """(status, reject reason, detail) for one zygote verdict."""
        status = verdict.get("status")
        if status == "returned":
            try:
                returned = (parse_literal_output(verdict["returned"]) if call_format
                            else json.loads(verdict["returned"]))
            except (ValueError, RecursionError) as exc:  # (parse_literal_output: ValueError)
                # our child writes it, but the program shares its process and can write too
                return "crashed", "crashed", f"the run's returned value does not parse: {exc}"[:300]
            if call_format:  # Python literals, compared as Python values
                same = python_values_match(returned, parse_literal_output(run.expected_output),
                                           rel_tol=self.cfg.float_rel_tol)
            else:
                same = values_match(returned, json.loads(run.expected_output),
                                    rel_tol=self.cfg.float_rel_tol)
            if same:
                return "ok", "", ""
            return "mismatch", "mismatch", (
                f"expected {run.expected_output[:200]}, returned {verdict['returned'][:200]}")
        if status in FAILED_STATUSES:
            reason = verdict.get("reason") or status
            detail = verdict.get("detail", "")
            if reason == "missing_module":
                detail = str(verdict.get("module"))
            return status, reason, detail
        return "crashed", "crashed", f"unexpected verdict {str(verdict)[:200]}"

    def _trace_row(self, work: ProgramWork, run: Run, verdict: dict) -> dict:
        return {
            "id": run.id, "problem_id": work.problem_id,
            "problem_description": work.problem_description,
            "io_requirements": work.io_requirements, "refcode": work.refcode,
            "funcname": work.funcname, "input": run.input,
            "expected_output": run.expected_output, "returned": verdict["returned"],
            "trace": verdict["trace"], "trace_lines": verdict["trace_lines"], "status": "ok",
            "value_format": "python" if work.call_format else "json",
            # every pair chosen for the program: what a rewrite must reproduce (rewrite task)
            "program_pairs": json.dumps([[r.input, r.expected_output] for r in work.runs],
                                        ensure_ascii=False),
        }

    def _sample_kept(self, rows: list[dict], work: ProgramWork, stats: StageStats) -> list[dict]:
        """With trace_all: keep the first k kept traces in the seeded order, reject the rest."""
        quota = self.cfg.samples_per_problem
        if not quota:
            return rows
        out, kept = [], 0
        for out_row in rows:
            if out_row["kind"] == TRACE and kept >= quota:
                run_id = json.loads(out_row["payload"])["id"]
                stats.kept["trace_filter"] -= 1
                out.append(reject(stats, "trace_filter", "not_sampled", run_id, work.problem_id,
                                  f"problem already has {quota} kept trace(s)"))
                continue
            kept += out_row["kind"] == TRACE
            out.append(out_row)
        return out


def note_story(stats: StageStats, told: Digest) -> None:
    """How a kept trace is told: whole or digested, what its digest folds, and its length
    beside the run's (the report's two histograms)."""
    stats.note("stories", "digested" if told.folds else "whole")
    if told.folds:
        stats.note("story_folds", "iterations", told.folded_iterations)
        stats.note("story_folds", "calls", told.folded_calls)
    stats.note("run_lines", _bucket(len(told.trace.lines)))
    stats.note("story_lines", _bucket(told.told_lines))


def _bucket(lines: int) -> str:
    """A histogram bucket: powers of two from 32 lines (<32, 32-63, ...)."""
    if lines < 32:
        return "<32"
    low = 1 << (lines.bit_length() - 1)
    return f"{low}-{2 * low - 1}"


class TraceActor:
    """``map_batches`` callable: program rows are traced, every other row passes through."""

    def __init__(self, cfg: TraceStageConfig):
        self.tracer = Tracer(cfg)

    def __call__(self, batch: pa.Table) -> pa.Table:
        def trace(payload: str, block_stats: StageStats, _: int) -> list[dict]:
            return self.tracer.trace_program(ProgramWork.from_payload(payload), block_stats)

        def finish(stats: BlockStats) -> None:
            info = self.tracer.jails["stdlib"].info
            stats.run.note("sandbox_isolation", info.get("identity", "unknown"), 0)
            stats.run.note("seccomp_filter", info.get("seccomp_filter", "unknown"), 0)
            stats.run.peak("trace_actor_peak_rss_mb",
                           resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

        return map_stream(batch, trace, kinds=(PROGRAM,), time_as="trace_actor_s", finish=finish)

    def __del__(self) -> None:
        tracer = getattr(self, "tracer", None)
        if tracer is not None:
            tracer.close()
