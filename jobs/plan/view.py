"""The plan as a table for a terminal (the JSON is the plan itself: docs/plan.md)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def number(value: float | None) -> str:
    """1234567 -> 1.23M; small figures as they are."""
    if value is None:
        return "?"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= max(size, 1e4):
            return f"{value / size:.3g}{suffix}"
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2g}"


def ranged(r: dict | None) -> str:
    """estimate (low-high), or low-high where there is no single estimate."""
    if r is None:
        return "?"
    if r.get("estimate") is None:
        return f"{number(r['low'])}-{number(r['high'])}"
    if r["low"] == r["high"] == r["estimate"]:
        return number(r["estimate"])
    return f"{number(r['estimate'])} ({number(r['low'])}-{number(r['high'])})"


def duration(r: dict | None) -> str:
    """A range of seconds in the unit that suits its largest end: s, min or h."""
    if r is None:
        return "?"
    top = max(v for v in r.values() if v is not None)
    size, unit = (1, "s") if top < 120 else (60, "min") if top < 7200 else (3600, "h")
    return ranged({k: (v / size if v is not None else None) for k, v in r.items()}) + " " + unit


def plan_lines(plan: dict) -> list[str]:
    s = plan["sample"]
    lines = [f"plan of groundtrace {plan['job']} on {plan['input']}: {plan['files']} file(s), "
             f"{number(plan['bytes'])} bytes, {ranged(plan['records'])} records",
             f"sample (seed {s['seed']}): {s['records']} records screened "
             f"({s['screen_fraction']:.1%}), {s['traced_records']} of them traced "
             f"({s['fraction']:.1%}), in {s['wall_s']:.1f} s; ranges: 5th-95th percentile",
             f"{'stage':<15} {'unit':<8} {'seen':>22} {'kept':>22} {'rejected':>22}"]
    for stage, c in plan["funnel"].items():
        lines.append(f"{stage:<15} {c['unit']:<8} {ranged(c['seen']):>22} {ranged(c['kept']):>22} "
                     f"{ranged(c['rejected']):>22}")
        reasons = sorted(c["reasons"].items(), key=lambda kv: -kv[1]["estimate"])
        if reasons:
            lines.append(" " * 16 + ", ".join(f"{r} {ranged(v)}" for r, v in reasons))
    t = plan["trace"]
    lines.append(f"screen: {ranged(plan['screen_core_s'])} core-s; "
                 f"trace: {ranged(t['runs'])} sandbox runs, {ranged(t['kept_traces'])} kept traces; "
                 f"sandbox {ranged(t['sandbox_core_s'])} core-s, trace actors "
                 f"{ranged(t['actor_core_s'])} core-s = {ranged(t['core_hours'])} core-hours")
    tr = plan.get("translation")
    if tr:
        out = tr["output_tokens"]
        lines.append(f"translation ({tr['translator']}{', ' + tr['model'] if tr['model'] else ''}; "
                     f"tasks {','.join(tr['tasks'])}): {ranged(tr['requests'])} requests"
                     + (f" ({ranged(tr['revision_requests'])} of them revisions, "
                        f"--revisions {tr['revisions']})" if tr.get("revisions") else "") + ", "
                     f"{ranged(tr['prompt_tokens'])} prompt tokens ({tr['prompt_tokens_by']})"
                     + (f", {ranged(tr['prompt_too_long'])} too long for {tr['context']}"
                        if tr["prompt_too_long"]["high"] else ""))
        lines.append(f"output tokens: renderer's reasoning {ranged(out['renderer'])} (the least), "
                     f"at most {ranged(out['max'])}"
                     + (f", expected {ranged(out['expected'])}" if out["expected"] else ""))
        if tr["translator"] == "llm":
            lines.append(f"GPU: {tr['gpu_tokens_per_s'] or '?'} output tokens/s per GPU"
                         + (f" ({tr['gpu_tokens_per_s_from']})" if tr["gpu_tokens_per_s_from"] else "")
                         + f", {ranged(tr['gpu_hours'])} GPU-hours"
                         if tr["gpu_hours"] else "GPU-hours: ? " + (
                             "(no --gpu-tokens-per-s)" if not tr["gpu_tokens_per_s"] else "(no --gpus)"))
    e = plan.get("examples")
    if e:
        lines.append(f"examples expected: {ranged(e)}"
                     + (f" (pass rate {e['pass_rate']:.3f}: {e['pass_rate_from']})"
                        if e["pass_rate"] is not None else f" ({e['pass_rate_from']})"))
    w = plan["wall_clock"]
    bound = (f"bound by the {w['bound_by'].upper()}s" if w["bound_by"]
             else "at the least: the GPU side is not known")
    lines.append(f"wall clock on {w['cpus']} CPUs ({w['trace_actors']} trace actors) and "
                 f"{w['gpus']} GPUs: {duration(w['total_s'])}, {bound}"
                 + (f" (CPU side {duration(w['cpu_s'])}, GPU side {duration(w['gpu_s'])})"
                    if w["gpu_s"] else ""))
    if w["advice"]:
        lines.append(f"advice: {w['advice']}")
    lines += [f"note: {note}" for note in plan["notes"]]
    return lines


def progress_printer(every_s: float = 10.0) -> Callable[[int, int], None]:
    """A progress callback that prints to stderr at most every ``every_s`` seconds."""
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= every_s or done == total and now - last[0] >= 1:
            last[0] = now
            print(f"groundtrace plan: traced {done} of {total} sampled programs", file=sys.stderr,
                  flush=True)

    return progress
