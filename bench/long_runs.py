"""Long runs: what the run budget and the digest add, what they cost, and whether the check holds.

    .venv/bin/python bench/long_runs.py [--dev PATH] [--programs N] [--story-lines 300]

(a) A/B/C of the trace stage on the dev set, in one process, program by program (the order
    turns): A is the reference method's cut (a run is stopped and rejected at 300 lines), B the
    defaults without elision (a run budget of ``SandboxLimits().max_run_lines`` lines, the
    story budget ``--story-lines``: a longer kept run is told with its long loops and deep
    calls folded; a run over the run budget is a reject), C the defaults (B, and a problem
    none of whose runs fits the run budget traced again with elision). For each: problems with
    a kept trace, kept traces told folded, sandbox seconds and trace-stage seconds per program.
(b) Over C's kept traces: the renderer's reasoning checked step by step against the whole run,
    with and without "Line N:" anchors (share kept: every stated step must be right); the
    check's median cost per translation; the longest example (characters, and tokens at 3.5
    characters a token, the low end for English prose with numbers).
(c) Wrong summaries of folds (tests/perturb.py FOLD_KINDS) and today's wrong steps (KINDS) put
    in the renderer's reasoning of the folded traces: the share rejected as a wrong step, with
    and without anchors.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from perturb import FOLD_KINDS, KINDS, perturb, perturb_fold, without_anchors  # noqa: E402

from trace_workers.actor import Tracer, TraceStageConfig  # noqa: E402
from trace_workers.jail.sandbox import SandboxLimits  # noqa: E402
from trace_workers.raw_filter import RawFilterConfig, filter_program  # noqa: E402
from trace_workers.records import ProgramWork, parse_record  # noqa: E402
from trace_workers.stats import StageStats  # noqa: E402
from translate.steps import check_steps  # noqa: E402
from translate.tasks import render_reasoning, training_prompt  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "pyedu_dev.jsonl"
CHARS_PER_TOKEN = 3.5


def programs(dev: Path, limit: int) -> list[ProgramWork]:
    works = []
    for number, line in enumerate(dev.read_text().splitlines()[:limit], 1):
        parsed = parse_record(line, f"dev:{number}")
        if hasattr(parsed, "reason"):
            continue
        for out in filter_program(parsed, RawFilterConfig(), StageStats()):
            if out["kind"] == "program":
                works.append(ProgramWork.from_payload(out["payload"]))
    return works


def trace_both(works: list[ProgramWork], story_lines: int) -> dict[str, dict]:
    configs = {
        "A: cut at 300 lines": TraceStageConfig(max_trace_lines=300,
                                                limits=SandboxLimits(max_run_lines=300,
                                                                     max_trace_bytes=262_144,
                                                                     elide=False)),
        "B: no elision (--no-elide)": TraceStageConfig(max_trace_lines=story_lines,
                                                       limits=SandboxLimits(elide=False)),
        "C: defaults (digest, elision)": TraceStageConfig(max_trace_lines=story_lines),
    }
    tracers = {name: Tracer(cfg) for name, cfg in configs.items()}
    results = {name: {"kept": [], "stats": StageStats(), "wall_s": 0.0} for name in configs}
    try:
        for number, work in enumerate(works):
            names = list(configs)
            order = names[number % len(names):] + names[:number % len(names)]
            for name in order:
                started = time.perf_counter()
                rows = tracers[name].trace_program(work, results[name]["stats"])
                results[name]["wall_s"] += time.perf_counter() - started
                results[name]["kept"] += [json.loads(r["payload"]) for r in rows
                                          if r["kind"] == "trace"]
    finally:
        for tracer in tracers.values():
            tracer.close()
    return results


def stage_table(results: dict[str, dict], n_programs: int) -> None:
    print(f"\n(a) trace stage, {n_programs} programs of the dev set (after the program filter)")
    print("config | problems with a kept trace | told folded | sandbox s per program | "
          "trace stage s per program | trace_filter rejects")
    print("---|---|---|---|---|---")
    for name, r in results.items():
        stats = r["stats"]
        problems = len({row["problem_id"] for row in r["kept"]})
        folded = sum(1 for row in r["kept"] if row.get("story_level"))
        print(f"{name} | {problems} ({problems / n_programs:.1%}) | {folded} | "
              f"{stats.timing['sandbox_s'] / n_programs:.4f} | {r['wall_s'] / n_programs:.4f} | "
              f"{dict(stats.rejected.get('trace_filter', {}))}")


def check_table(rows: list[dict]) -> None:
    texts = [render_reasoning(row) for row in rows]
    kept = {True: 0, False: 0}
    wrong = []
    costs = []
    for row, text in zip(rows, texts, strict=True):
        for anchors in (True, False):
            written = text if anchors else without_anchors(text)
            started = time.perf_counter()
            check = check_steps(written, row["trace"], row["refcode"], row["funcname"])
            costs.append(time.perf_counter() - started)
            kept[anchors] += check.wrong == ""
            if check.wrong:
                wrong.append(f"{row['id']} ({'anchored' if anchors else 'unanchored'}): {check.wrong}")
    folded = [row for row in rows if row.get("story_level")]
    examples = [len(training_prompt(row)) + len(text) for row, text in zip(rows, texts, strict=True)]
    longest = max(examples) if examples else 0
    print(f"\n(b) the renderer's reasoning of B's {len(rows)} kept traces ({len(folded)} told "
          "folded), each step checked against the whole run")
    print(f"kept with anchors {kept[True]}/{len(rows)} ({kept[True] / len(rows):.2%}), without "
          f"{kept[False]}/{len(rows)} ({kept[False] / len(rows):.2%}); check median "
          f"{1000 * statistics.median(costs):.2f} ms a translation")
    print(f"longest example (training prompt + reasoning): {longest} characters, about "
          f"{longest / CHARS_PER_TOKEN:.0f} tokens at {CHARS_PER_TOKEN} characters a token")
    for line in wrong[:5]:
        print("  wrong:", line[:240])


def perturbation_table(rows: list[dict]) -> None:
    folded = [row for row in rows if row.get("story_level")]
    made, caught = Counter(), Counter()
    for row in folded:
        right = render_reasoning(row)
        for kind in (*FOLD_KINDS, *KINDS):
            rng = random.Random(f"{row['id']}:{kind}")
            wrong = (perturb_fold(right, kind, rng, row["refcode"], row["trace"]) if kind in FOLD_KINDS
                     else perturb(right, kind, rng, row["refcode"], row["trace"]))
            if wrong is None:
                continue
            for anchors in (True, False):
                text = wrong if anchors else without_anchors(wrong)
                made[kind, anchors] += 1
                caught[kind, anchors] += check_steps(text, row["trace"], row["refcode"]).wrong != ""
    print(f"\n(c) one wrong step in the renderer's reasoning of the {len(folded)} folded traces")
    print("wrong step | anchored | unanchored")
    print("---|---|---")
    for kind in (*FOLD_KINDS, *KINDS):
        cells = [f"{caught[kind, a]}/{made[kind, a]} ({caught[kind, a] / made[kind, a]:.1%})"
                 if made[kind, a] else "-" for a in (True, False)]
        print(f"{kind} | " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--programs", type=int, default=794)
    parser.add_argument("--story-lines", type=int, default=TraceStageConfig().max_trace_lines)
    args = parser.parse_args()
    works = programs(args.dev, args.programs)
    results = trace_both(works, args.story_lines)
    stage_table(results, len(works))
    rows = results["C: defaults (digest, elision)"]["kept"]
    check_table(rows)
    perturbation_table(rows)


if __name__ == "__main__":
    main()
