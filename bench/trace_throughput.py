"""Trace-stage throughput against the reference method, and memory while streaming.

    .venv/bin/python bench/trace_throughput.py [--dev PATH] [--reference-runs N] [--repeat 5]

(a) Reference method, as the design notes describe it: per run, a generated file with
    ``@snoop(depth=N)`` pasted above the function and the call appended, run by a fresh
    interpreter that imports snoop, 5 s limit. Sequential, so its wall time is core time.
(b) ``groundtrace trace --trace-all --samples-per-problem 0`` on the whole dev set: every chosen
    pair is executed, one actor per core. Runs per core-second = runs / (wall x actors).
(c) Peak RSS of the driver and of an actor with default settings, for the set and for the set
    repeated ``--repeat`` times (streaming: should stay flat).

``--floor`` measures instead what no tracer can go below: each run's call alone (no fork,
no formatting) under the zygote's dry run (its line counter ``TraceFloor``, about 1 us an event),
stopped at the line budget or the 5 s limit, each in a fork of a process that imported the
corpus' libraries beforehand; their sum bounds the runs per core-second of any tracer that runs
every run until its trace passes the budget. Like the reference method, it runs the dev set's
programs outside the jail.

``--compare-snoop`` measures instead fast_snoop's tracer against snoop's own on every chosen
run, in jails side by side (runs alternate which goes first): sandbox seconds of each, and
whether the traces are byte-identical (a program's later runs are skipped after a timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trace_workers.raw_filter import RawFilterConfig, filter_program  # noqa: E402
from trace_workers.records import ProgramWork, parse_record  # noqa: E402
from trace_workers.stats import StageStats  # noqa: E402

REFERENCE_PRELUDE = """\
import snoop
snoop.install(columns='', replace_watch_extras=())
"""


def chosen_runs(dev: Path) -> list[tuple[ProgramWork, int]]:
    """The runs the trace stage would make, in a seeded order, as (program, run index)."""
    runs = []
    for line_number, line in enumerate(dev.read_text().splitlines(), 1):
        parsed = parse_record(line, f"dev:{line_number}")
        if hasattr(parsed, "reason"):
            continue
        for row in filter_program(parsed, RawFilterConfig(), StageStats()):
            if row["kind"] == "program":
                work = ProgramWork.from_payload(row["payload"])
                runs += [(work, i) for i in range(len(work.runs))]
    return runs


def reference(runs: list[tuple[ProgramWork, int]], python: str) -> dict:
    statuses: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        for number, (work, index) in enumerate(runs):
            kwargs = json.loads(work.runs[index].input)
            code = work.refcode.replace(f"def {work.funcname}",
                                        f"\n@snoop(depth={work.depth})\ndef {work.funcname}", 1)
            call = f"\n{work.funcname}(**{kwargs!r})\n"
            path = Path(folder, f"main_{number}.py")
            path.write_text(REFERENCE_PRELUDE + code + call)
            try:
                done = subprocess.run([python, str(path)], capture_output=True, text=True,
                                      timeout=5, cwd=folder, start_new_session=True)
                ok = f"<<< Return value from {work.funcname}" in done.stderr
                status = "returned" if ok else "failed"
            except subprocess.TimeoutExpired:
                status = "timeout"
            statuses[status] = statuses.get(status, 0) + 1
        wall = time.perf_counter() - started
    return {"runs": len(runs), "wall_s": wall, "runs_per_core_s": len(runs) / wall,
            "statuses": statuses}


def trace_stage(source: Path, out: Path, actors: int, extra: list[str]) -> dict:
    # the screen is off: the repeated set repeats itself on purpose (memory while streaming),
    # and the trace stage is measured on every program (bench/screen_throughput.py: the screen)
    command = [sys.executable, "-m", "jobs.cli", "trace", "--input", str(source), "--output",
               str(out), "--overwrite", "--actors", str(actors), "--no-dedup",
               "--near-dup-threshold", "0", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"trace stage failed:\n{output}")
    manifest = json.loads((out / "manifest.json").read_text())
    runs = manifest["throughput"]["runs_executed"]
    return {
        "command": " ".join(command[1:]), "process_wall_s": time.perf_counter() - started,
        "job_wall_s": manifest["wall_s"], "runs": runs,
        "runs_per_core_s": runs / (manifest["wall_s"] * actors),
        "driver_peak_rss_mb": usage.ru_maxrss / 1024,
        "actor_peak_rss_mb": manifest["peaks"].get("trace_actor_peak_rss_mb"),
        "trace_reasons": manifest["counts"]["trace"]["reasons"],
        "kept": manifest["written"]["traces"], "accounting_ok": manifest["accounting_ok"],
    }


def compare_snoop(runs: list[tuple[ProgramWork, int]]) -> dict:
    from trace_workers.actor import JAILS
    from trace_workers.jail.sandbox import Sandbox, SandboxLimits, SandboxSettings

    def jail(fast: bool, preload: tuple[str, ...]) -> Sandbox:
        return Sandbox(SandboxSettings(limits=SandboxLimits(fast_tracer=fast), preload=preload))

    jails = {(fast, name): jail(fast, preload)
             for fast in (True, False) for name, preload in JAILS.items()}
    seconds = {True: 0.0, False: 0.0}
    identical, differing, skipped, timed_out = 0, [], 0, set()
    keys = ("status", "trace", "returned", "detail", "trace_lines")
    try:
        for number, (work, index) in enumerate(runs):
            if work.problem_id in timed_out:
                skipped += 1
                continue
            verdicts = {}
            for fast in ((True, False) if number % 2 else (False, True)):
                verdict = jails[fast, work.jail].run(
                    work.refcode, work.funcname, work.runs[index].input, work.depth,
                    call_format=work.call_format)
                seconds[fast] += verdict.get("elapsed_s", 0.0)
                verdicts[fast] = verdict
            if "timeout" in (verdicts[True]["status"], verdicts[False]["status"]):
                timed_out.add(work.problem_id)
            if [verdicts[True].get(k) for k in keys] == [verdicts[False].get(k) for k in keys]:
                identical += 1
            else:
                differing.append(f"{work.problem_id}:{index}")
            if number % 500 == 0:
                print(f"  compared {number}/{len(runs)} runs", flush=True)
    finally:
        for box in jails.values():
            box.close()
    return {"runs": identical + len(differing), "identical": identical, "differing": differing,
            "skipped_after_timeout": skipped, "fast_sandbox_s": seconds[True],
            "snoop_sandbox_s": seconds[False], "ratio": seconds[False] / seconds[True]}


def _floor_of(runs: list[tuple[ProgramWork, int]]) -> list[tuple[str, float]]:
    """(outcome, seconds) of each run's call under the dry run, one fork per run."""
    import importlib

    from trace_workers.jail import dry_run
    from trace_workers.jail.sandbox import DEFAULT_PRELOAD, SandboxLimits

    for name in DEFAULT_PRELOAD:
        importlib.import_module(name)
    limits = SandboxLimits().for_zygote()
    results = []
    for work, index in runs:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            try:
                _floor_child(work, index, write_fd, limits)
            finally:
                os._exit(0)
        os.close(write_fd)
        message, ready = _read_dry_run(read_fd, limits["timeout_s"], dry_run.MORE_TIME)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_fd)
        if not ready:
            results.append(("timeout", limits["timeout_s"]))
        elif "dry_run" in message:  # "fits" or "over_budget", and when the call started and ended
            results.append((message["dry_run"],
                            message["marks"]["dry_run"] - message["marks"]["called"]))
        else:  # the program failed before the call (an import)
            results.append(("not_called", 0.0))
    return results


def _read_dry_run(read_fd: int, timeout_s: float, more_time: bytes) -> tuple[dict, bool]:
    """The dry run's message (less a request for more time, which the floor's whole limit
    already grants), and whether it came before ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while True:
        ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return {}, False
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        data += chunk
    data = data.removeprefix(more_time)
    return (json.loads(data) if data.strip() else {}), True


def _floor_child(work: ProgramWork, index: int, result_fd: int, limits: dict) -> None:
    """The program as a run's child sets it up, then the zygote's own dry run (which sends its
    outcome and marks to ``result_fd`` and exits)."""
    from trace_workers.jail import dry_run, tracing
    from trace_workers.jail.protocol import PROGRAM_FILENAME, parse_call

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    tracing.set_program_lines(work.refcode)
    namespace = {"__name__": "program", "__file__": PROGRAM_FILENAME}
    exec(compile(work.refcode, PROGRAM_FILENAME, "exec"), namespace)
    given = work.runs[index].input
    args, kwargs = parse_call(given, namespace) if work.call_format else ((), json.loads(given))
    tracing.current_buffer = tracing.TraceBuffer(result_fd, limits["max_trace_lines"],
                                                            limits["max_trace_bytes"])
    marks = {"called": time.monotonic()}
    dry_run.run_dry(namespace[work.funcname], args, kwargs, work.depth, limits, result_fd,
                          marks)


def floor(runs: list[tuple[ProgramWork, int]], workers: int) -> dict:
    """The runs split over ``workers`` processes (one per core), as the trace stage's actors."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        parts = pool.map(_floor_of, [runs[i::workers] for i in range(workers)])
    results = [result for part in parts for result in part]
    seconds = sorted((s for _, s in results), reverse=True)
    outcomes: dict[str, int] = {}
    for outcome, _ in results:
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    total = sum(seconds)
    top = max(1, len(seconds) // 100)
    return {"runs": len(results), "call_s": total, "ceiling_runs_per_core_s": len(results) / total,
            "top_1pct_s": sum(seconds[:top]), "outcomes": outcomes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=ROOT.parent / "shared/data/pyedu_dev.jsonl")
    parser.add_argument("--reference-runs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--actors", type=int, default=os.cpu_count())
    parser.add_argument("--compare-snoop", action="store_true",
                        help="only compare fast_snoop's tracer with snoop's own (see above)")
    parser.add_argument("--floor", action="store_true",
                        help="only measure the programs' own time under a line counter: the "
                             "most runs per core-second any tracer could reach (see above)")
    args = parser.parse_args()
    if not args.dev.exists():
        raise SystemExit(f"{args.dev} not found")
    runs = chosen_runs(args.dev)
    if args.compare_snoop:
        result = compare_snoop(runs)
        print(f"fast_snoop vs snoop: {result['runs']} runs, {result['identical']} traces "
              f"identical, differing: {result['differing'][:20]}; sandbox time "
              f"{result['fast_sandbox_s']:.1f} s vs {result['snoop_sandbox_s']:.1f} s = "
              f"{result['ratio']:.2f}x ({result['skipped_after_timeout']} runs skipped after "
              "a timeout)")
        return
    if args.floor:
        result = floor(runs, args.actors)
        print(f"floor: {result['runs']} runs, their calls alone under a line counter "
              f"{result['call_s']:.1f} core-s ({result['outcomes']}); the slowest 1% of runs "
              f"take {result['top_1pct_s']:.1f} s of it. No tracer that runs every run can pass "
              f"{result['ceiling_runs_per_core_s']:.1f} runs/core-s on this set.")
        return
    step = max(1, len(runs) // args.reference_runs)
    sample = runs[::step][: args.reference_runs]  # spread over the whole set
    print(f"dev set: {len(runs)} chosen runs; reference sample: {len(sample)} runs", flush=True)

    ref = reference(sample, sys.executable)
    print(f"(a) reference: {ref['runs']} runs in {ref['wall_s']:.1f} s on 1 core = "
          f"{ref['runs_per_core_s']:.2f} runs/core-s {ref['statuses']}", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        full = trace_stage(args.dev, folder / "all", args.actors,
                           ["--trace-all", "--samples-per-problem", "0"])
        print(f"(b) trace stage, every run: {full['runs']} runs in {full['job_wall_s']:.1f} s "
              f"with {args.actors} actors = {full['runs_per_core_s']:.2f} runs/core-s; "
              f"ratio to reference {full['runs_per_core_s'] / ref['runs_per_core_s']:.1f}x; "
              f"kept {full['kept']}; {full['trace_reasons']}", flush=True)
        once = trace_stage(args.dev, folder / "once", args.actors, [])
        repeated_source = folder / "repeated.jsonl"
        repeated_source.write_text(args.dev.read_text() * args.repeat)
        many = trace_stage(repeated_source, folder / "many", args.actors, [])
    print(f"(c) default settings, set x1: {once['runs']} runs in {once['job_wall_s']:.1f} s, "
          f"driver peak {once['driver_peak_rss_mb']:.0f} MiB, actor peak "
          f"{once['actor_peak_rss_mb']:.0f} MiB")
    print(f"    default settings, set x{args.repeat}: {many['runs']} runs in "
          f"{many['job_wall_s']:.1f} s, driver peak {many['driver_peak_rss_mb']:.0f} MiB, "
          f"actor peak {many['actor_peak_rss_mb']:.0f} MiB")
    for name in ("driver_peak_rss_mb", "actor_peak_rss_mb"):
        growth = many[name] / once[name] - 1
        print(f"    {name}: x{args.repeat} vs x1 {growth:+.1%}")
    print(json.dumps({"reference": ref, "trace_all": full, "default_x1": once,
                      f"default_x{args.repeat}": many,
                      "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
                     indent=2))


if __name__ == "__main__":
    main()
