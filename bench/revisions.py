"""Revisions and early stops through a streaming endpoint: output tokens per kept example and
wall clock, with and without the early stop, side by side in one run.

    .venv/bin/python bench/revisions.py [--programs 40] [--rate 300] [--dev PATH]

The dev set's programs are traced once in the real sandbox (not timed); each gets the
renderer's reasoning with loop counts and loop summaries added (tests/perturb.py). Answers of
``--min-words`` to ``--max-words`` words are served (long answers, but no run told whole past
the job's story budget). Half of the programs are answered first with one wrong step (of the
kinds translating models make) put as early as the perturbations allow, within the answer's
first ``--early`` share, and every request that carries the feedback with the right
reasoning. The server is the tests' fault proxy (tests/http_fault_proxy.py): it streams each
answer a word a chunk at ``--rate`` words a second (and answers a request that does not stream
after the same time) and stops when the client goes away, as vLLM does, so the tokens it counts
are the tokens a GPU would have generated. The job runs
twice on a local Ray, ``--revisions 1`` both times: ``--no-early-stop`` and the default.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from http_fault_proxy import HttpFaultProxy  # noqa: E402
from perturb import KINDS, perturb, with_loop_counts, with_loop_summaries  # noqa: E402
from step_check import DEV, traces  # noqa: E402

from jobs import cli  # noqa: E402
from translate.revision import feedback  # noqa: E402
from translate.steps import check_steps  # noqa: E402
from translate.tasks import render_reasoning  # noqa: E402

AGAIN = "Reason through the run again"  # in every feedback turn (translate/revision.py)
assert AGAIN in feedback("wrong_step", "x")


def right_reasoning(row: dict) -> str:
    text = with_loop_counts(render_reasoning(row), row["refcode"], row["trace"])
    return with_loop_summaries(text, row["trace"], row["refcode"], 0)


def earliest_wrong(row: dict, text: str, seed: int, early: float) -> str | None:
    """One wrong step, as early in the text as the kinds of wrong step allow (checked wrong),
    within its first ``early`` share; None when none is."""
    best, at = None, len(text)
    for number, kind in enumerate(KINDS * 3):
        wrong = perturb(text, kind, random.Random(seed * 100 + number), row["refcode"], row["trace"])
        if not wrong or not check_steps(wrong, row["trace"], row["refcode"]).wrong:
            continue
        first = next((i for i, (a, b) in enumerate(zip(wrong, text, strict=False)) if a != b), len(text))
        if first < at:
            best, at = wrong, first
    return best if at <= early * len(text) else None


def served(dev: Path, programs: int, words: tuple[int, int],
           early: float) -> tuple[list[dict], dict[str, str], dict[str, str]]:
    records = {json.loads(line)["refcode"]: json.loads(line) for line in dev.read_text().splitlines()}
    first, right, chosen = {}, {}, []
    for number, row in enumerate(traces(dev, programs * 8, 1)):
        if row["refcode"] in right:
            continue
        text = right_reasoning(row)
        if not words[0] <= len(text.split()) <= words[1]:
            continue
        wrong = earliest_wrong(row, text, number, early) if len(chosen) % 2 == 0 else text
        if wrong is None:
            continue
        record = records[row["refcode"]]
        io = next(io for io in record["ios"] if json.dumps(io["input"]) == row["input"])
        chosen.append({**record, "ios": [io]})
        first[row["refcode"]], right[row["refcode"]] = wrong, text
        if len(chosen) == programs:
            break
    return chosen, first, right


def run(records: list[dict], first: dict, right: dict, rate: float, folder: Path,
        *flags: str) -> dict:
    def plan(prompt: str, attempt: int) -> str:
        [code] = [code for code in right if f"```\n{code}" in prompt]
        return "answer:" + (right[code] if AGAIN in prompt else first[code])

    proxy = HttpFaultProxy(None, plan)
    proxy.stream_rate = rate
    source = folder / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = folder / ("out" + "".join(flags))
    started = time.perf_counter()
    try:
        code = cli.main(["run", "--input", str(source), "--output", str(out), "--actors", "2",
                         "--endpoint", proxy.url, "--model", "served", "--tasks", "output",
                         "--revisions", "1", "--progress-s", "0", *flags])
    finally:
        wall = time.perf_counter() - started
        proxy.close()
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and manifest["accounting_ok"], manifest["checks"]
    kept = manifest["counts"]["build"]["kept"]
    bill = manifest["translation"]["bill"]
    return {"mode": " ".join(flags) or "early stop (default)", "wall_s": round(wall, 1),
            "kept": kept, "requests": len(proxy.requests),
            "server_tokens": proxy.generated_tokens,
            "server_tokens_per_kept": round(proxy.generated_tokens / kept, 1) if kept else None,
            "streams_stopped": proxy.stopped_streams,
            "job_tokens_per_kept": bill.get("generated_tokens_per_kept_example"),
            "first_pass": bill.get("first_attempt_pass_rate"),
            "after_revisions": bill.get("pass_rate_after_revisions"),
            "estimate_not_generated": bill.get("tokens_not_generated_estimate")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--programs", type=int, default=40)
    parser.add_argument("--rate", type=float, default=300.0, help="words a second per stream")
    parser.add_argument("--min-words", type=int, default=300, help="the shortest answer served")
    parser.add_argument("--max-words", type=int, default=2000, help="the longest answer served "
                        "(a run told whole, longer than the job's story budget, is left out)")
    parser.add_argument("--early", type=float, default=0.1, help="the wrong step lies within "
                        "this share of the answer")
    args = parser.parse_args()
    if not args.dev.exists():
        sys.exit(f"no dev set at {args.dev}")
    records, first, right = served(args.dev, args.programs, (args.min_words, args.max_words),
                                   args.early)
    words = sorted(len(t.split()) for t in right.values())
    print(f"{len(records)} programs, {sum(first[c] != right[c] for c in right)} answered first "
          f"with one wrong step; answers of {words[0]}-{words[-1]} words (median "
          f"{words[len(words) // 2]}), streamed at {args.rate:g} words/s")
    import os

    import ray

    # the CPUs the job's own local Ray would have (jobs.pipeline.init_ray): both runs share it
    ray.init(address="local", num_cpus=(os.cpu_count() or 1) + 10, include_dashboard=False,
             configure_logging=False)
    with tempfile.TemporaryDirectory() as folder:
        rows = [run(records, first, right, args.rate, Path(folder), "--no-early-stop"),
                run(records, first, right, args.rate, Path(folder))]
    for row in rows:
        print(json.dumps(row))
    without, with_stop = rows[0]["server_tokens_per_kept"], rows[1]["server_tokens_per_kept"]
    if without and with_stop:
        print(f"output tokens per kept example: {without:g} without early stops, {with_stop:g} "
              f"with ({1 - with_stop / without:.1%} lower); wall {rows[0]['wall_s']} s and "
              f"{rows[1]['wall_s']} s")


if __name__ == "__main__":
    main()
