"""The step check's cost and what it catches, on the dev set's rendered translations.

    .venv/bin/python bench/step_check.py [--dev PATH] [--programs N] [--inputs 1] [--repeat 3]

Each program's first ``--inputs`` inputs are traced once in the real sandbox (not timed); then,
over the traces, the renderer's reasoning is made, the final answer verified and the steps
checked, each timed on its own (best of ``--repeat``), and the check's median cost per
translation. The renderer is the control: every step it states must be right. Then the
perturbation table: the renderer's reasoning (with right loop counts and loop summaries added)
with one wrong step of each kind the translating models make (tests/perturb.py), in three
writing styles, with and without "Line N:" anchors: the share rejected as a wrong step, and the
share of the untouched reasoning kept.
"""

from __future__ import annotations

import argparse
import ast
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

from perturb import (  # noqa: E402
    KINDS,
    STYLES,
    in_style,
    perturb,
    with_loop_counts,
    with_loop_summaries,
    without_anchors,
)

from trace_workers.jail.sandbox import Sandbox, SandboxLimits, SandboxSettings  # noqa: E402
from trace_workers.raw_filter import snoop_depth  # noqa: E402
from translate.answer import verify  # noqa: E402
from translate.steps import check_steps  # noqa: E402
from translate.tasks import render_reasoning  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "pyedu_dev.jsonl"


def traces(dev: Path, limit: int, inputs: int) -> list[dict]:
    box = Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=2.0)))
    box.start()
    rows = []
    try:
        for line in dev.read_text().splitlines()[:limit]:
            record = json.loads(line)
            try:
                depth = snoop_depth(ast.parse(record["refcode"]))
            except SyntaxError:
                continue
            for number, io in enumerate((record.get("ios") or [])[:inputs]):
                if not isinstance(io.get("input"), dict):
                    continue
                result = box.run(record["refcode"], record["funcname"], json.dumps(io["input"]),
                                 depth)
                if result["status"] == "returned" and "!!!" not in result["trace"]:
                    rows.append({"id": f"{record.get('id', len(rows))}-{number}",
                                 "refcode": record["refcode"], "funcname": record["funcname"],
                                 "input": json.dumps(io["input"]), "returned": result["returned"],
                                 "value_format": "json", "trace": result["trace"]})
    finally:
        box.close()
    return rows


def best_of(repeat: int, work) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def median_ms(rows: list[dict], texts: list[str], repeat: int) -> float:
    """The check's median cost per translation (each the best of ``repeat``), in ms."""
    per_item = []
    for row, text in zip(rows, texts, strict=True):
        per_item.append(1000 * best_of(repeat, lambda r=row, t=text: check_steps(
            t, r["trace"], r["refcode"], r["funcname"])))
    return statistics.median(per_item)


def perturbation_table(rows: list[dict]) -> None:
    """Per kind of wrong step, style and anchors: how many of the made texts are rejected."""
    made, caught = Counter(), Counter()
    for row in rows:
        right = with_loop_summaries(with_loop_counts(render_reasoning(row), row["refcode"],
                                                     row["trace"]), row["trace"], row["refcode"],
                                    row.get("story_level") or 0)
        variants = {"none (kept)": right}
        for kind in KINDS:
            wrong = perturb(right, kind, random.Random(f"{row['id']}:{kind}"), row["refcode"],
                            row["trace"])
            if wrong is not None:
                variants[kind] = wrong
        for kind, text in variants.items():
            for style in STYLES:
                for anchors in (True, False):
                    written = in_style(text, style)
                    written = written if anchors else without_anchors(written)
                    wrong = check_steps(written, row["trace"], row["refcode"], row["funcname"]).wrong
                    made[kind, style, anchors] += 1
                    caught[kind, style, anchors] += bool(wrong) != (kind == "none (kept)")
    columns = [(style, anchors) for style in STYLES for anchors in (True, False)]
    print("\nwrong step | " + " | ".join(f"{s} {'anchored' if a else 'unanchored'}"
                                         for s, a in columns))
    print("|".join(["---"] * (len(columns) + 1)))
    for kind in ["none (kept)", *KINDS]:
        cells = [f"{caught[kind, s, a]}/{made[kind, s, a]} "
                 f"({100 * caught[kind, s, a] / made[kind, s, a]:.1f}%)" if made[kind, s, a] else "-"
                 for s, a in columns]
        print(f"{kind} | " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--programs", type=int, default=794)
    parser.add_argument("--inputs", type=int, default=1, help="inputs traced per program")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-perturbations", action="store_true",
                        help="only the cost and the control, not the table of wrong steps")
    args = parser.parse_args()
    rows = traces(args.dev, args.programs, args.inputs)
    texts = [render_reasoning(row) for row in rows]
    render_s = best_of(args.repeat, lambda: [render_reasoning(row) for row in rows])
    verify_s = best_of(args.repeat, lambda: [verify(t, r["returned"], thinking=False)
                                             for t, r in zip(texts, rows, strict=True)])
    checks = [check_steps(t, r["trace"], r["refcode"], r["funcname"]) for t, r in zip(texts, rows,
                                                                                         strict=True)]
    check_s = best_of(args.repeat, lambda: [check_steps(t, r["trace"], r["refcode"], r["funcname"])
                                            for t, r in zip(texts, rows, strict=True)])
    steps = sum(c.checked for c in checks)
    right = sum(c.right for c in checks)
    by_kind = Counter()
    for check in checks:
        by_kind.update(check.checked_by_kind)
    wrong = [c.wrong for c in checks if c.wrong]
    coverage = sorted(c.coverage for c in checks)
    stage = render_s + verify_s + check_s
    print(f"{len(rows)} rendered translations of dev traces; {steps} steps checked "
          f"({', '.join(f'{k} {n}' for k, n in sorted(by_kind.items()))}), {right} right, "
          f"{len(wrong)} translations with a wrong step; median coverage "
          f"{coverage[len(coverage) // 2]:.2f}, lowest {coverage[0]:.2f}")
    print(f"render {render_s:.3f} s, verify {verify_s:.3f} s, step check {check_s:.3f} s: "
          f"{steps / check_s:.0f} steps/s, {len(rows) / check_s:.0f} translations/s, median "
          f"{median_ms(rows, texts, args.repeat):.2f} ms a translation; the check is "
          f"{100 * check_s / stage:.1f}% of the translate stage (render + verify + check)")
    for text in wrong[:5]:
        print("  wrong:", text)
    if not args.no_perturbations:
        perturbation_table(rows)


if __name__ == "__main__":
    main()
