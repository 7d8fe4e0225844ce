"""OUT/report.html: the run as a person reads it.

The funnel from records to training examples, the reject reasons, histograms of trace lengths
and of token (or character) lengths, throughput per stage, and a few sample records. Built
from the output folder alone (manifest.json and the shards), so ``groundtrace report OUT``
rebuilds it at any time; the histograms are matplotlib PNGs embedded in the page, which is
one self-contained file wherever OUT lives.
"""

from __future__ import annotations

import base64
import html
import io
import json
import posixpath
from dataclasses import dataclass, field

import pyarrow.dataset as pads
import pyarrow.fs as pafs

from jobs.storage import ShardWriter
from translate.bill import bill_line

REPORT_FILE = "report.html"
BAR_COLOR = "#2f6db5"  # the histograms' bars (the browser test looks for it)
SAMPLES = 3


@dataclass
class Histogram:
    title: str
    xlabel: str
    values: list[float]
    note: str = ""


@dataclass
class ReportData:
    manifest: dict
    histograms: list[Histogram] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)


def _dataset(writer: ShardWriter, sub: str) -> pads.Dataset | None:
    path = posixpath.join(writer.root, sub)
    if writer.fs.get_file_info(path).type != pafs.FileType.Directory:
        return None
    selector = pafs.FileSelector(path, recursive=False)
    files = sorted(i.path for i in writer.fs.get_file_info(selector)
                   if i.type == pafs.FileType.File and i.path.endswith(".parquet"))
    return pads.dataset(files, filesystem=writer.fs, format="parquet") if files else None


def _column(data: pads.Dataset | None, name: str) -> list:
    if data is None or name not in data.schema.names:
        return []
    return [v for v in data.to_table(columns=[name]).column(name).to_pylist() if v is not None]


def load(output: str) -> ReportData:
    writer = ShardWriter(output)
    with writer.fs.open_input_stream(posixpath.join(writer.root, "manifest.json")) as handle:
        manifest = json.loads(handle.read())
    report = ReportData(manifest)
    traces = _dataset(writer, "traces")
    translations = _dataset(writer, "translations")
    training = _dataset(writer, "training/parquet")
    rejects = _dataset(writer, "rejects")
    if traces is not None:
        report.histograms.append(Histogram("Kept traces", "trace lines",
                                           _column(traces, "trace_lines")))
    tokens = _column(training, "tokens")
    generated = _column(translations, "generated_tokens")
    if tokens:
        report.histograms.append(Histogram("Training examples", "tokens (trained tokenizer)", tokens))
    if generated:
        report.histograms.append(Histogram("Translations", "generated tokens", generated))
    if not tokens and not generated and translations is not None:
        lengths = [len(text) for text in _column(translations, "reasoning")]
        report.histograms.append(Histogram(
            "Reasoning length", "characters", lengths,
            "no token counts in this run: give --trained-tokenizer, or translate with --model"))
    if training is not None and not tokens:
        chars = [sum(len(m["content"]) for m in messages)
                 for messages in _column(training, "messages")]
        report.histograms.append(Histogram(
            "Training examples", "characters", chars,
            "no --trained-tokenizer: lengths in characters (trainers cut at a length in tokens)"))
    if training is not None:
        report.examples = training.head(SAMPLES, columns=["id", "messages"]).to_pylist()
    if rejects is not None:
        report.rejects = _reject_samples(rejects)
    return report


def _reject_samples(rejects: pads.Dataset, limit: int = 8) -> list[dict]:
    """One reject of each reason (the first met), at most ``limit``."""
    by_reason: dict[tuple[str, str], dict] = {}
    for batch in rejects.to_batches(columns=["id", "stage", "reason", "detail"]):
        for row in batch.to_pylist():
            by_reason.setdefault((row["stage"], row["reason"]), row)
            if len(by_reason) >= limit:
                return list(by_reason.values())
    return list(by_reason.values())


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    ax.spines[["top", "right"]].set_visible(False)
    return plt, fig, ax


def _png(plt, fig) -> str:
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def histogram_png(hist: Histogram) -> str:
    """The histogram as a PNG data URI."""
    plt, fig, ax = _figure(6, 3.2)
    ax.hist(hist.values, bins=min(40, max(5, len(set(hist.values)))), color=BAR_COLOR)
    ax.set_title(f"{hist.title} ({len(hist.values)})")
    ax.set_xlabel(hist.xlabel)
    ax.set_ylabel("count")
    return _png(plt, fig)


def funnel_png(counts: dict[str, dict]) -> str:
    """Seen and kept per stage, first stage on top, as a PNG data URI."""
    stages = list(counts)[::-1]
    plt, fig, ax = _figure(7, 0.35 * len(stages) + 1.0)
    ax.barh(stages, [counts[s]["seen"] for s in stages], color="#c9d7ea", label="seen")
    ax.barh(stages, [counts[s]["kept"] for s in stages], color=BAR_COLOR, label="kept")
    for y, stage in enumerate(stages):
        ax.text(counts[stage]["kept"], y, f" {counts[stage]['kept']}", va="center", fontsize=8)
    ax.set_xlabel("records / pairs")
    ax.legend(loc="lower right", frameon=False)
    return _png(plt, fig)


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _funnel(manifest: dict) -> str:
    rows = []
    for stage, c in manifest["counts"].items():
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(c["reasons"].items(), key=lambda kv: -kv[1]))
        rows.append([stage, c["unit"], c["seen"], c["kept"], c["rejected"], reasons])
    return _table(["stage", "unit", "seen", "kept", "rejected", "reasons"], rows)


def _tasks(manifest: dict) -> str:
    tasks = manifest.get("tasks") or {}
    if len(tasks) < 2:
        return ""
    return "<h2>Tasks</h2>" + _table(["task", "items", "training examples"],
                                     [[t, c["items"], c["examples"]] for t, c in tasks.items()])


def _screen(manifest: dict) -> str:
    """What the screen took out before tracing, and which benchmarks the run met."""
    screen = manifest.get("screen")
    if not screen:
        return ""
    counts = manifest["counts"]
    rows = [[reason, n] for stage in ("dedup", "decontaminate") if stage in counts
            for reason, n in counts[stage]["reasons"].items()]
    text = "<h2>Screen</h2>" + _table(["reason", "records"], rows or [["none", 0]])
    benchmarks = manifest.get("contaminated_by") or {}
    if screen.get("key", {}).get("decontaminate"):
        items = screen.get("benchmark_items", 0)
        text += (f"<p>{items} benchmark items from "
                 f"{html.escape(', '.join(screen['key']['decontaminate']))}</p>")
        text += _table(["benchmark", "contaminated records"],
                       sorted(benchmarks.items()) or [["none", 0]])
    return text


def _nodes(manifest: dict) -> str:
    """Nodes whose sandbox did not start: no trace actor ran there."""
    broken = (manifest.get("sandbox_nodes") or {}).get("broken") or {}
    if not broken:
        return ""
    return ("<h2>Nodes without a sandbox</h2><p class='bad'>No trace actor ran on these nodes: "
            "their jail did not start.</p>"
            + _table(["node", "host", "reason"],
                     [[node[:12], info.get("host"), info.get("reason")] for node, info in broken.items()]))


def _translator(manifest: dict) -> str:
    """Which model made the reasoning, and through which endpoint (scheme and host)."""
    translation = manifest.get("translation") or {}
    if not translation.get("model"):
        return ""
    where = f" at {translation['endpoint']}" if translation.get("endpoint") else " (vLLM in the job)"
    answers = translation.get("answers") or {}
    thought = (f" {answers.get('thinking', 0)} answers with a thinking block, "
               f"{answers.get('no_thinking', 0)} without (each checked whole).") if answers else ""
    bill = bill_line(translation.get("bill") or {})
    bill = f" The bill: {html.escape(bill)}." if bill else ""
    return f"<p>Reasoning by {html.escape(translation['model'] + where)}.{thought}{bill}</p>"


def _steps(manifest: dict) -> str:
    """Step correctness beside the final-answer rate, and how much of each trace was stated."""
    translation = manifest.get("translation") or {}
    steps = translation.get("steps") or {}
    if not steps:
        return ""
    kinds = list(next(iter(steps.values())).get("wrong_by_kind") or {})
    rows = [[task, c["checked"], c["right"], "" if c["correctness"] is None else f"{c['correctness']:.1%}"]
            + [f"{c['wrong_by_kind'][k]} of {c['checked_by_kind'][k]}" for k in kinds]
            for task, c in steps.items()]
    text = ("<h2>Steps checked against the trace</h2><p>translations that passed every check "
            "(final answer and every stated step): "
            f"{html.escape(str(translation.get('verified_fraction')))}; a "
            "translation is rejected at its first wrong step, counted by that step's kind</p>"
            + _table(["task", "steps checked", "right", "step correctness"]
                     + [f"wrong {k.replace('_', ' ')} (of checked)" for k in kinds], rows))
    histogram = translation.get("step_coverage_histogram") or {}
    if histogram:
        text += _table(["share of the trace's value changes stated", "translations"],
                       [[k, v] for k, v in histogram.items()])
    return text


def stories_section(manifest: dict) -> str:
    """How the kept runs are told: whole, or folded under the story budget."""
    stories = manifest.get("stories")
    if not stories:
        return ""
    runs, told = stories["run_lines_histogram"], stories["story_lines_histogram"]
    bins = sorted(set(runs) | set(told), key=lambda b: -1 if b == "<32" else int(b.split("-")[0]))
    budget = manifest.get("config", {}).get("trace", {}).get("max_trace_lines")
    return (f"<p>Kept runs: {stories['whole']} told whole, {stories['digested']} longer than the "
            f"story budget ({html.escape(str(budget))} lines) told with their long loops and deep "
            f"calls folded: {stories['folded_iterations']} loop iterations and "
            f"{stories['folded_calls']} calls told in one step each, every one checked against "
            "the whole run." + _elided_sentence(stories.get("elided")) + "</p>"
            + _table(["lines", "runs (as traced)", "runs (as told)"],
                     [[b, runs.get(b, 0), told.get(b, 0)] for b in bins]))


def _elided_sentence(elided: dict | None) -> str:
    """The kept runs over the run budget, recorded with elision (trace_workers.jail.elision)."""
    if not elided or not elided.get("kept_traces"):
        return ""
    return (f" {elided['kept_traces']} of them ran past the run budget and were recorded with "
            f"the rest of their long loops ({elided['iterations']} iterations in "
            f"{elided['loop_spans']} spans) and {elided['call_spans']} deep calls left untraced; "
            "what a span leaves is printed with it and told as a fold.")


def _training(manifest: dict) -> str:
    """The examples' layout and their longest, with how to cap them when no tokenizer counts."""
    training = manifest.get("training")
    if not training or training.get("longest") is None:
        return ""
    text = (f"<p>Training examples: reasoning in the {html.escape(training['reasoning_in'])} "
            f"(LLaMA-Factory template {html.escape(training['llamafactory_template'])}); the "
            f"longest is {training['longest']} {training['length_unit']}")
    if training["length_unit"] == "characters":
        text += (". Trainers cut an example at their cutoff in tokens without a word (a token is "
                 "about 3 to 4 characters here): give --trained-tokenizer and "
                 "--max-training-tokens to reject longer ones, or raise the trainer's cutoff")
    return text + ".</p>" + _table([f"length ({training['length_unit']})", "examples"],
                                   [[k, v] for k, v in training["length_histogram"].items()])


def _throughput(manifest: dict) -> str:
    """Items per second of wall time per stage (stages run at once, streaming), and per
    second of the time the stage's workers were busy where it was measured."""
    wall = manifest["wall_s"] or None
    busy = {"trace": manifest.get("timing_s", {}).get("trace_actor_s"),
            "translate": manifest.get("timing_s", {}).get("translate_s")}
    rows = []
    for stage, c in manifest["counts"].items():
        worked = busy.get(stage)
        rows.append([stage, c["seen"], f"{c['seen'] / wall:.1f}" if wall else "",
                     f"{worked:.3f}" if worked is not None else "",
                     f"{c['seen'] / worked:.1f}" if worked else ""])
    table = _table(["stage", "items", "per wall second", "busy worker-seconds",
                    "per busy second"], rows)
    t = manifest["throughput"]
    extra = [f"wall time {manifest['wall_s']:.1f} s", f"trace actors {manifest.get('trace_actors')}"]
    if t.get("runs_executed"):
        extra.append(f"{t['runs_executed']} sandboxed runs, {t['runs_per_s']} runs/s, "
                     f"{t['sandbox_s_per_run']} s each in the sandbox")
    if "translation" in manifest and manifest["translation"].get("generated_tokens_per_s"):
        extra.append(f"{manifest['translation']['generated_tokens_per_s']} generated tokens/s")
    return table + "<p>" + html.escape("; ".join(extra)) + "</p>"


def _examples(examples: list[dict]) -> str:
    parts = []
    for number, example in enumerate(examples):
        turns = "".join(
            f"<div class='turn'><b>{html.escape(m['role'])}</b><pre>"
            f"{html.escape(m['content'][:1500] + ('…' if len(m['content']) > 1500 else ''))}</pre></div>"
            for m in example["messages"])
        opened = " open" if number == 0 else ""
        parts.append(f"<details{opened}><summary>{html.escape(example['id'])}</summary>"
                     f"{turns}</details>")
    return "".join(parts) or "<p>no training examples in this run</p>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td:nth-child(n+3) { font-variant-numeric: tabular-nums; }
.ok { color: #17702a; } .bad { color: #b00020; font-weight: bold; }
.charts img { max-width: 49%; } pre { white-space: pre-wrap; background: #f7f7f7; padding: 6px; }
"""


def render(report: ReportData) -> str:
    m = report.manifest
    ok = m["accounting_ok"]
    status = ("<span class='ok'>every row accounted for</span>" if ok else
              "<span class='bad'>ACCOUNTING FAILED: " + html.escape(
                  ", ".join(k for k, v in m["checks"].items() if not v)) + "</span>")
    charts = "".join(
        f"<img alt='{html.escape(h.title)}' src='{histogram_png(h)}'>"
        + (f"<p class='meta'>{html.escape(h.note)}</p>" if h.note else "")
        for h in report.histograms if h.values)
    written = ", ".join(f"{n} {label}" for label, n in m["written"].items())
    rejects = _table(["id", "stage", "reason", "detail"],
                     [[r["id"], r["stage"], r["reason"], (r["detail"] or "")[:200]]
                      for r in report.rejects])
    resume = m.get("resume", {})
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>groundtrace report: {html.escape(m['job'])}</title>
<style>{STYLE}</style></head><body>
<h1>groundtrace {html.escape(m['job'])}</h1>
<p class="meta">started {html.escape(m['started_at'])}, {m['wall_s']:.1f} s, Ray {html.escape(
        str(m.get('ray_address', 'local')))}, attempt {resume.get('attempt', 1)}; input
{html.escape(str(m['config']['input']))} &rarr; {html.escape(str(m['config']['output']))}</p>
<p>{status}. Written: {html.escape(written)}.</p>{_translator(m)}
<h2>Funnel</h2><img alt="funnel" src="{funnel_png(m['counts'])}">{_funnel(m)}
{_nodes(m)}{_screen(m)}{_tasks(m)}{_steps(m)}<h2>Throughput</h2>{_throughput(m)}
<h2>Lengths</h2>{stories_section(m)}{_training(m)}
<div class="charts">{charts or '<p>nothing to draw</p>'}</div>
<h2>Sample training examples</h2>{_examples(report.examples)}
<h2>Sample rejects (one per reason)</h2>{rejects}
</body></html>
"""


def write_report(output: str) -> str:
    """Build OUT/report.html from OUT; returns its path."""
    return ShardWriter(output).write_text(REPORT_FILE, render(load(output)))
