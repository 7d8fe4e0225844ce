"""The step check's cost: steps checked per second on the dev set's rendered translations, and
its share of the translate stage with the renderer (render + verify + the step check).

    .venv/bin/python bench/step_check.py [--dev PATH] [--programs N] [--repeat 3]

Each program's first input is traced once in the real sandbox (not timed); then, over the
traces, the renderer's reasoning is made, the final answer verified and the steps checked,
each timed on its own (best of ``--repeat``). It also prints what the check found: the renderer
is the control, so every step it states must be right.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trace_workers.raw_filter import snoop_depth  # noqa: E402
from trace_workers.sandbox import Sandbox, SandboxLimits, SandboxSettings  # noqa: E402
from translate.answer import verify  # noqa: E402
from translate.steps import check_steps  # noqa: E402
from translate.tasks import render_reasoning  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "pyedu_dev.jsonl"


def traces(dev: Path, limit: int) -> list[dict]:
    box = Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=2.0)))
    box.start()
    rows = []
    try:
        for line in dev.read_text().splitlines()[:limit]:
            record = json.loads(line)
            io = (record.get("ios") or [{}])[0]
            if not isinstance(io.get("input"), dict):
                continue
            try:
                depth = snoop_depth(ast.parse(record["refcode"]))
            except SyntaxError:
                continue
            result = box.run(record["refcode"], record["funcname"], json.dumps(io["input"]), depth)
            if result["status"] == "returned" and "!!!" not in result["trace"]:
                rows.append({"id": "x", "refcode": record["refcode"], "funcname": record["funcname"],
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev", type=Path, default=DEV)
    parser.add_argument("--programs", type=int, default=794)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = traces(args.dev, args.programs)
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
    wrong = [c.wrong for c in checks if c.wrong]
    coverage = sorted(c.coverage for c in checks)
    stage = render_s + verify_s + check_s
    print(f"{len(rows)} rendered translations of dev traces; {steps} steps checked, {right} right, "
          f"{len(wrong)} translations with a wrong step; median coverage "
          f"{coverage[len(coverage) // 2]:.2f}, lowest {coverage[0]:.2f}")
    print(f"render {render_s:.3f} s, verify {verify_s:.3f} s, step check {check_s:.3f} s: "
          f"{steps / check_s:.0f} steps/s, {len(rows) / check_s:.0f} translations/s; the check is "
          f"{100 * check_s / stage:.1f}% of the translate stage (render + verify + check)")
    for text in wrong[:5]:
        print("  wrong:", text)


if __name__ == "__main__":
    main()
