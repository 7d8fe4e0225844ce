"""``groundtrace plan`` against the job it plans: its time, and how near its figures come.

    .venv/bin/python bench/plan.py                     # the dev set (../shared), 2 seeds
    .venv/bin/python bench/plan.py --input IN --seeds 5 --fraction 0.1 --accuracy-fraction 0.2
    .venv/bin/python bench/plan.py --generated 4000     # tests/test_plan.py's corpus, 4 shapes
    .venv/bin/python bench/plan.py --mixed generated --seeds 20   # two sources unlike each other
    .venv/bin/python bench/plan.py --mixed dev --seeds 20         # the dev set, half as calls

(1) ``groundtrace trace`` on the whole input, timed from the command's start to its end
    (Ray's start and the screen included: what a user waits for);
(2) ``groundtrace plan --sample-fraction F`` (default 10%), timed the same way, per seed;
(3) plans from ``--accuracy-fraction`` (default 20%) per seed, each figure's error against
    the job's manifest: kept traces, the rejects of each stage, sandbox and trace-actor
    core-seconds, and whether the job's figure lies in the plan's range.

With ``--generated N``, the input is N made-up records of every fate (tests/generated_programs.py:
kept, mismatch, error, trace budget, slow, filtered, unreadable) written as one JSONL file, and
step (3) also runs on the same records as 40 files, as .jsonl.gz files and as Parquet.
With ``--mixed``, the input is a folder of two sources unlike each other: problems of nine
pairs that mostly fail beside one-call records that mostly pass (``generated``), or the dev
set's first half as PyEdu problems beside its second half's pairs as one call each (``dev``);
step (3) also runs on the same records as one file, the sources interleaved. The summary gives,
per figure, the seeds within 10% of the job and the seeds whose range holds the job's figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("read", "dedup", "decontaminate", "program_filter", "pair_filter", "trace", "trace_filter")


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    return time.perf_counter() - started, done.stdout


def groundtrace(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", *args]


def errors(plan: dict, manifest: dict) -> dict:
    """Each figure: the plan's estimate, the job's, the error, and the job's in the range."""
    def one(got: dict, real: float) -> dict:
        return {"plan": got["estimate"], "job": real,
                "error": round((got["estimate"] - real) / real, 4) if real else None,
                "in_range": got["low"] <= real <= got["high"]}

    out = {"kept_traces": one(plan["funnel"]["trace_filter"]["kept"],
                              manifest["counts"]["trace_filter"]["kept"])}
    for stage in STAGES:
        out[f"rejected:{stage}"] = one(plan["funnel"][stage]["rejected"],
                                       manifest["counts"][stage]["rejected"])
    kept = plan["funnel"]["trace_filter"]["kept"]
    out["kept_traces"]["within_bound"] = kept["high"] <= plan["records"]["high"]  # 1 a problem
    out["sandbox_core_s"] = one(plan["trace"]["sandbox_core_s"], manifest["timing_s"]["sandbox_s"])
    out["actor_core_s"] = one(plan["trace"]["actor_core_s"], manifest["timing_s"]["trace_actor_s"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(ROOT.parent / "shared" / "data" / "pyedu_dev.jsonl"))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.1, help="the timed plans' sample")
    parser.add_argument("--accuracy-fraction", type=float, default=0.2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--generated", type=int, help="plan a made-up corpus of this many records")
    parser.add_argument("--mixed", choices=("generated", "dev"),
                        help="plan a corpus of two sources unlike each other")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.mixed:
            shapes = mixed(args.mixed, args.input, Path(scratch))
        elif args.generated:
            shapes = generated(args.generated, Path(scratch))
        else:
            shapes = {"input": args.input}
        args.input = next(iter(shapes.values()))
        if not Path(args.input).exists() and "://" not in args.input:
            sys.exit(f"no input at {args.input}")
        run(args, shapes)


def generated(records: int, folder: Path) -> dict[str, str]:
    """tests/test_plan.py's corpus: one JSONL file, 40 files, .jsonl.gz files, Parquet."""
    sys.path.insert(0, str(ROOT / "tests"))
    from generated_programs import EVERY_STAGE, mixed_corpus, write_shapes

    shapes = write_shapes(mixed_corpus(records, seed=11, shares=EVERY_STAGE), folder)
    return {"one file": shapes["one"], "40 files": shapes["many"], ".jsonl.gz": shapes["gz"],
            "Parquet": shapes["parquet"]}


def mixed(kind: str, dev: str, folder: Path) -> dict[str, str]:
    """Two sources in one folder, and the same records interleaved in one file."""
    sys.path.insert(0, str(ROOT / "tests"))
    from generated_programs import CALL_FATES, PROBLEM_FATES, calls, problems

    if kind == "generated":
        sources = {"problems.jsonl": problems(200, seed=5, ios=9, shares=PROBLEM_FATES),
                   "calls.jsonl": calls(800, seed=6, shares=CALL_FATES)}
    else:
        records = [json.loads(line) for line in Path(dev).read_text().splitlines() if line.strip()]
        half = len(records) // 2
        sources = {"pyedu.jsonl": [json.dumps(r) for r in records[:half]],
                   "calls.jsonl": [call for r in records[half:] for call in as_call(r)]}
    (folder / "sources").mkdir()
    for name, lines in sources.items():
        (folder / "sources" / name).write_text("\n".join(lines) + "\n")
    a, b = sources.values()
    step = max(1, round(len(b) / max(1, len(a))))
    woven = [line for k, first in enumerate(a) for line in [first, *b[k * step:(k + 1) * step]]]
    woven += b[len(a) * step:]
    (folder / "woven.jsonl").write_text("\n".join(woven) + "\n")
    return {"two sources": str(folder / "sources"), "one file": str(folder / "woven.jsonl")}


def as_call(record: dict) -> list[str]:
    """A PyEdu record's first pair as a call-format record (one call, Python literals): one
    call a program, as CRUXEval has it (more would be near copies the screen drops)."""
    for pair in record.get("ios", []):
        if isinstance(pair.get("input"), dict):
            arguments = ", ".join(f"{k}={v!r}" for k, v in pair["input"].items())
            return [json.dumps({"code": record["refcode"], "entry": record["funcname"],
                                "input": arguments, "output": repr(pair["output"])})]
    return []


def summary(accuracy: list[dict]) -> dict:
    """Per shape and figure: seeds within 10% of the job, seeds in range, of how many."""
    out: dict = {}
    for row in accuracy:
        for name, f in row.items():
            if not isinstance(f, dict) or f["error"] is None:
                continue
            mine = out.setdefault(row["shape"], {}).setdefault(
                name, {"within_10pct": 0, "in_range": 0, "seeds": 0, "worst": 0.0})
            mine["seeds"] += 1
            mine["within_10pct"] += abs(f["error"]) <= 0.10
            mine["in_range"] += f["in_range"]
            mine["worst"] = max(mine["worst"], abs(f["error"]))
            if "within_bound" in f:
                mine["within_bound"] = mine.get("within_bound", 0) + f["within_bound"]
    return out


def run(args, shapes: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        job_s, _ = timed(groundtrace("trace", "--input", args.input, "--output", folder,
                                     "--overwrite", "--progress-s", "0"))
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
    print(f"groundtrace trace: {job_s:.1f} s", flush=True)
    plan_s = []
    for seed in range(args.seeds):
        seconds, _ = timed(groundtrace("plan", "--input", args.input, "--sample-fraction",
                                       str(args.fraction), "--seed", str(seed), "--json"))
        plan_s.append(round(seconds, 2))
        print(f"groundtrace plan --sample-fraction {args.fraction} --seed {seed}: {seconds:.1f} s "
              f"({seconds / job_s:.3f} of the job)", flush=True)
    accuracy = []
    for shape, path in shapes.items():
        for seed in range(args.seeds):
            _, text = timed(groundtrace("plan", "--input", path, "--sample-fraction",
                                        str(args.accuracy_fraction), "--seed", str(seed), "--json"))
            found = errors(json.loads(text), manifest)
            accuracy.append({"shape": shape, "seed": seed, **found})
            print(f"{shape}, seed {seed}, {args.accuracy_fraction:.0%} sample: " + ", ".join(
                f"{name} {f['error']:+.1%}{'' if f['in_range'] else ' (out of range)'}"
                for name, f in found.items() if f["error"] is not None), flush=True)
    result = {"input": args.input, "job_s": round(job_s, 2), "plan_fraction": args.fraction,
              "plan_s": plan_s, "plan_over_job": [round(s / job_s, 3) for s in plan_s],
              "accuracy_fraction": args.accuracy_fraction, "accuracy": accuracy,
              "summary": summary(accuracy)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
