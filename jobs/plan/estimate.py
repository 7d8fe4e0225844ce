"""``groundtrace plan``: the bill before the run, from the real stages on a seeded sample.

The sample (:mod:`jobs.plan.sample`) goes through the same code the job runs: the screen's
decisions (over the sample), the read stage's filters (``expand_batch``), the trace actor's
``Tracer`` in real sandboxes (one per core of this machine, in threads: no Ray to start), the
trace filter, the tasks, and the renderer with its verification, or the prompts an LLM would
be sent, counted in the model's tokenizer. Nothing is written anywhere.

Every figure is a sum over records; the sample's sums are scaled to the input (exact record
counts where the files tell them, records per byte elsewhere) and each is given a range: the
5th and 95th percentiles of the same estimate over the sample's units resampled (a bootstrap,
narrowed by the finite-population correction: a sample of the whole input has no spread).
Duplicates across the corpus are the exception: a sample sees a pair of copies only when it
holds both, so the screen's figure is a lower bound, and the plan says how many the sample's
own rate suggests (:func:`duplicate_note`).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from jobs.config import JobConfig
from jobs.plan.sample import RATIO, Sample
from trace_workers.actor import TraceActor
from trace_workers.expand import expand_batch
from trace_workers.records import is_call_record
from trace_workers.stats import STAGES, TRACE_STAGES, TRANSLATE_STAGES
from trace_workers.stream import (
    EXAMPLE,
    PROGRAM,
    REQUEST,
    STATS,
    STREAM_SCHEMA,
    TRACE,
    stream_rows,
    utf8_safe,
)
from translate.stage import VerifySettings, render_batch, to_requests_batch

SCHEMA = "groundtrace.plan/2"  # docs/plan.md: what each version changed
BOOTSTRAP = 400  # resamples behind each range
# The resamples of a class's mean over a few dozen traced records spread less than new samples
# do (measured: the errors over 20 seeds of a mixed corpus were 1.19x the ranges' spread,
# bench/plan.py --mixed generated), so a range is widened around its estimate (docs/plan.md).
WIDEN = 1.25
LOW, HIGH = 5, 95  # percentiles of a range
GPU_BENCH_RECORD = Path(__file__).resolve().parents[2] / "bench" / "records" / "translate_gpu.json"
CHARS_PER_TOKEN = 4  # without a tokenizer, prompts and outputs are counted as characters / 4
HEAVY_JAIL = "full"  # trace_workers.actor.JAILS: the jail whose start costs a core a second or more


class InputUnreadable(RuntimeError):
    """An input that cannot be listed or read (credentials, an endpoint, a broken file)."""


class SampleBlocks:
    """The screen's decisions over the sample, as the read stage looks them up (one block
    per sampled record, named by its index)."""

    def __init__(self, decided: dict[str, dict]):
        self.decided = decided

    def decision(self, block: str | None, where: str) -> dict | None:
        return self.decided.get(block or "")


# --- running the stages ------------------------------------------------------------------------

@dataclass
class Measured:
    figures: list[Counter]  # one per sampled record
    prompt_tokens_by: str  # "tokenizer of MODEL" or "characters / 4"
    context: int | None  # the model's context, when the prompts were counted in its tokens
    threads: int
    jail_start_s: float = 0.0  # the jails' first starts, all actors together (not scaled)


def measure(cfg: JobConfig, sample: Sample, threads: int | None = None,
            progress=None) -> Measured:
    """Each sampled record through the job's stages: its figures (counts per stage and
    reason, sandbox and actor seconds, task items, prompt and output tokens)."""
    traced = sum(record.traced for record in sample.records)
    threads = max(1, min(threads or os.cpu_count() or 1, traced or 1))
    # the trace actors' jails start while the screen and the filters run, in the threads that
    # then trace (a jail ends with the thread that started it: PR_SET_PDEATHSIG)
    pool = ThreadPoolExecutor(threads)
    actors = [pool.submit(TraceActor, cfg.trace.stage()) for _ in range(threads if traced else 0)]
    try:
        blocks = [str(i) for i in range(len(sample.records))]
        figures = [Counter() for _ in blocks]
        started = time.perf_counter()
        decided = _screen(cfg, sample, blocks)
        for mine in figures:  # the screen's time, shared by the records it read
            mine[SCREEN_S] = (time.perf_counter() - started) / max(1, len(figures))
        lines = pa.table({"where": [r.where for r in sample.records],
                          "record": [r.text for r in sample.records], "block": blocks,
                          "block_size": [1] * len(blocks)})
        expanded = expand_batch(lines, cfg.trace.raw_filter(), SampleBlocks(decided))
        programs = [program for program in _take(expanded, figures)
                    if sample.records[int(program[2])].traced]
        for record, mine in zip(sample.records, figures, strict=True):
            if record.traced:  # what the traced figures are scaled by (Scaler)
                mine["traced_pairs"] = mine["kept:pair_filter"]
        traces, jail_start_s = _trace(programs, figures, [a.result() for a in actors], pool, progress)
    finally:
        for actor in actors:
            if actor.done() and actor.exception() is None:
                actor.result().tracer.close()
        pool.shutdown(cancel_futures=True)
    by, context = _translate(cfg, traces, figures)
    return Measured(figures, by, context, threads, jail_start_s)


def _screen(cfg: JobConfig, sample: Sample, blocks: list[str]) -> dict[str, dict]:
    from jobs.screen.stage import POSITION_BITS, load_benchmarks, screen_records

    settings = cfg.screen.settings(cfg.trace.raw_filter())
    if not settings.active():
        return {}
    index = (load_benchmarks(settings.decontaminate, settings.ngram, settings.coverage)
             if settings.decontaminate else None)
    by_file: dict[int, list[tuple[str, str]]] = defaultdict(list)
    block_of: dict[int, str] = {}
    for block, record in zip(blocks, sample.records, strict=True):
        # the record's place in input order: its file and its position there
        by_file[record.file_index].append((f"{record.where.rsplit(':', 1)[0]}:{record.position}",
                                           record.text))
        block_of[record.file_index << POSITION_BITS | record.position] = block
    decided = screen_records(settings, sorted(by_file.items()), index)
    return {block_of[order]: decision for order, decision in decided.items() if order in block_of}


def _take(table: pa.Table, figures: list[Counter], kinds: tuple[str, ...] = (PROGRAM,)) -> list[tuple]:
    """The rows of ``kinds`` of a stream table (kind, payload, block); its counters go to
    the figures of the records they belong to."""
    wanted = []
    for kind, payload, block in stream_rows(table):
        if kind == STATS:
            if block is not None:
                _count(figures[int(block)], json.loads(payload))
        elif kind in kinds:
            wanted.append((kind, payload, block))
    return wanted


def _count(figures: Counter, stats: dict) -> None:
    for stage, n in stats.get("seen", {}).items():
        figures[f"seen:{stage}"] += n
    for stage, n in stats.get("kept", {}).items():
        figures[f"kept:{stage}"] += n
    for stage, reasons in stats.get("rejected", {}).items():
        for reason, n in reasons.items():
            figures[f"rejected:{stage}:{reason}"] += n
            figures[f"rejected:{stage}"] += n
    for what, seconds in stats.get("timing", {}).items():
        figures[f"s:{what}"] += seconds
    figures["runs"] += stats.get("details", {}).get("runs", {}).get("executed", 0)


def _trace(programs: list[tuple], figures: list[Counter], actors: list[TraceActor],
           pool: ThreadPoolExecutor, progress) -> tuple[list[tuple], float]:
    """The program rows through the trace actors, one thread each (the work is in the
    jails' processes). The programs of the heaviest jail go first and to one actor: one
    start of it, not one per thread, and it overlaps the other threads' work."""
    free = list(actors)
    starts = [jail.first_start_s or 0.0 for actor in actors for jail in actor.tracer.jails.values()]
    local = threading.local()
    lock = threading.Lock()
    done = [0]

    def run_one(program: tuple) -> pa.Table:
        jails = local.actor.tracer.jails.values()
        unstarted = [jail for jail in jails if jail.first_start_s is None]
        started = time.perf_counter()
        out = local.actor(pa.Table.from_pylist(
            [dict(zip(("kind", "payload", "block"), program, strict=True))], schema=STREAM_SCHEMA))
        # a jail's first start is the actor's fixed cost, not this program's (nor scaled)
        first = sum(jail.first_start_s or 0.0 for jail in unstarted)
        figures[int(program[2])]["s:actor"] += time.perf_counter() - started - first
        with lock:
            starts.append(first)
            done[0] += 1
            if progress is not None:
                progress(done[0], len(programs))
        return out

    def run(unit: list[tuple]) -> list[pa.Table]:
        if not hasattr(local, "actor"):
            with lock:
                local.actor = free.pop()
        return [run_one(program) for program in unit]

    heavy = [p for p in programs if json.loads(p[1]).get("jail") == HEAVY_JAIL]
    blocks = {p[2] for p in heavy}
    units = ([heavy] if heavy else []) + [[p] for p in programs if p[2] not in blocks]
    traces: list[tuple] = []
    for outs in pool.map(run, units):
        for out in outs:
            traces += _take(out, figures, (TRACE,))
    return traces, sum(starts)


def _translate(cfg: JobConfig, traces: list[tuple], figures: list[Counter]) -> tuple[str, int | None]:
    """Task items, their prompts in tokens, the renderer's reasoning (the shortest an LLM
    would write, and the renderer's own output and pass rate when it is the translator)."""
    if not traces:
        return _token_counter(cfg)[1], None
    t = cfg.translate
    table = pa.Table.from_pylist([dict(zip(("kind", "payload", "block"), row, strict=True))
                                  for row in traces], schema=STREAM_SCHEMA)
    task_cfg = t.task_settings(cfg.trace.seed)
    count, by, context = *_token_counter(cfg), _context(cfg)
    cap = t.max_tokens or _default_max_tokens()
    # the make_tasks counts: from the requests for an LLM, from the renderer's own run else
    counts_to = figures if t.uses_llm() else [Counter() for _ in figures]
    requests = _take(to_requests_batch(table, keep_traces=False, task_cfg=task_cfg), counts_to,
                     (REQUEST,))
    from translate.tasks import render_reasoning, translation_prompt

    for _, payload, block in requests:
        item, mine = json.loads(payload), figures[int(block)]
        mine["items"] += 1
        try:
            prompt = count(utf8_safe(translation_prompt(item)), prompt=True)
        except Exception:  # noqa: BLE001 - as the engine's preprocess: one prompt_failed reject
            mine["prompt_failed"] += 1
            continue
        mine["prompt_tokens"] += prompt
        room = (context - prompt) if context else cap
        if context and room < t.min_new_tokens:
            mine["prompt_too_long"] += 1
            continue
        most = min(cap, room)
        mine["max_output_tokens"] += most
        try:  # what a model writes at the least, and can write at the most
            mine["render_tokens"] += min(most, count(utf8_safe(render_reasoning(item)), prompt=False))
        except Exception:  # noqa: BLE001 - a task the renderer cannot write (input, rewrite):
            pass  # no least length from it
    if not t.uses_llm():
        verify_cfg = VerifySettings(thinking=False, float_rel_tol=cfg.trace.float_rel_tol,
                                    check_steps=t.steps_checked_for(),
                                    min_step_coverage=t.min_step_coverage)
        started = time.perf_counter()
        out = render_batch(table, verify_cfg, cfg.build.settings(), keep_traces=False,
                           task_cfg=task_cfg)
        elapsed = time.perf_counter() - started
        for _, _, block in _take(out, figures, (EXAMPLE,)):
            figures[int(block)]["examples"] += 1
        for _, _, block in traces:  # the renderer's time, shared by the traces it rendered
            figures[int(block)]["s:render"] += elapsed / len(traces)
    return by, context


def _default_max_tokens() -> int:
    from translate.llm import LLMSettings

    return LLMSettings.max_tokens


def _token_counter(cfg: JobConfig):
    """(count(text, prompt), what it counts in): the model's tokenizer when it loads (a
    prompt as the engine sends it: the chat template around it), else characters / 4."""
    model = cfg.translate.model
    if model:
        try:
            from translate.export import load_tokenizer

            tokenizer = load_tokenizer(str(model))
        except Exception:  # noqa: BLE001 - a model id with no local copy, no network: say so
            tokenizer = None
        if tokenizer is not None:
            thinking = cfg.translate.enable_thinking

            def count(text: str, prompt: bool) -> int:
                if prompt and getattr(tokenizer, "chat_template", None):
                    text = tokenizer.apply_chat_template(
                        [{"role": "user", "content": text}], tokenize=False,
                        add_generation_prompt=True, enable_thinking=thinking)
                return len(tokenizer(text, add_special_tokens=False)["input_ids"])

            return count, f"tokenizer of {model}"
    return (lambda text, prompt: math.ceil(len(text) / CHARS_PER_TOKEN)), "characters / 4"


def _context(cfg: JobConfig) -> int | None:
    """The context the engine would have, when it can be told here (else no prompt is
    counted as too long)."""
    t = cfg.translate
    if not t.model or t.endpoint:
        return t.max_model_len
    try:
        from translate.llm import resolve_max_model_len

        return resolve_max_model_len(str(t.model), t.max_model_len)
    except Exception:  # noqa: BLE001 - a model whose config cannot be read here
        return t.max_model_len


# --- scaling, with ranges ----------------------------------------------------------------------

CHEAP_STAGES = ("read", "dedup", "decontaminate", "program_filter", "pair_filter")
PAIRS = "kept:pair_filter"  # the pairs sent to the sandbox
SCREEN_S = "s:screen"  # the screen's seconds (before any program runs: a cheap figure)


def is_cheap(name: str) -> bool:
    """A figure every screened record has (the stages before the sandbox), rather than one
    only the traced records have."""
    parts = name.split(":")
    return name in ("records", SCREEN_S) or (len(parts) > 1 and parts[1] in CHEAP_STAGES)


MIN_CLASS_TRACED = 5  # traced records a record class needs to stand alone (else: merged)
TRACED_RECORDS = "traced_records"


def record_format(text: str, input_format: str = "auto") -> str:
    """What a record holds, as the read stage tells it (``is_call_record``): ``call`` (code,
    input, output: one call), ``pyedu`` (refcode and ios) or ``unreadable``."""
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        return "unreadable"
    if not isinstance(record, dict):
        return "unreadable"
    return "call" if is_call_record(record, input_format) else "pyedu"


def pairs_bucket(pairs: float) -> int:
    """0 pairs, 1, 2-3, 4-7, 8-15, 16 or more: records alike in what the sandbox gets."""
    return min(5, int(pairs).bit_length())


BUCKET_LOW, BUCKET_HIGH = (0, 1, 2, 4, 8, 16), (0, 1, 3, 7, 15, None)


def _pairs_label(first: int, last: int) -> str:
    low, high = BUCKET_LOW[first], BUCKET_HIGH[last]
    if high is None:
        return f"{low}+ pairs"
    return f"{low} pair{'s' * (low != 1)}" if low == high else f"{low}-{high} pairs"


class Scaler:
    """Sums over the sample scaled to the whole input, each with a bootstrap range.

    In each stratum (jobs.plan.sample: a shape and source of files): N, the stratum's records
    (exact, or a ratio over the units read). A cheap figure (known for every screened record)
    is N times its mean over the screened records. Any other is known for the traced records
    only, and is estimated per record class (a double sample for stratification): the records
    of a stratum differ in what they hold (a record of nine pairs against one of one call), so
    the screened records give each class's share of N, and the traced records of the class its
    mean per record. A kept-trace figure then stays within its bound by construction (no class
    mean exceeds what one record can yield). A class with too few traced records is merged with
    its neighbour of the same format; one with none at all (in a resample) takes the stratum's
    mean per pair times its pairs. The resamples draw the screened units again, each part's
    spread narrowed by its finite-population correction (a sample of the whole input has none)."""

    def __init__(self, sample: Sample, figures: list[Counter], seed: int,
                 input_format: str = "auto"):
        self.names = sorted({name for f in figures for name in f}
                            | {"records", PAIRS, "traced_pairs", TRACED_RECORDS})
        self.cheap = np.array([is_cheap(name) for name in self.names])
        self.at = {name: i for i, name in enumerate(self.names)}
        rng = np.random.default_rng(seed)
        self.strata = []
        self.classes: dict[str, list[dict]] = {}
        for name, stratum in sample.strata.items():
            mine = [(record, values) for record, values in zip(sample.records, figures, strict=True)
                    if record.stratum == name]
            kinds = [(record_format(record.text, input_format), pairs_bucket(values[PAIRS]))
                     for record, values in mine]
            merged, described = self._classes(kinds, [record.traced for record, _ in mine])
            self.classes[name] = described
            units: dict[str, np.ndarray] = {
                unit: np.zeros((len(described), len(self.names))) for unit in stratum.counted}
            for (record, values), kind in zip(mine, kinds, strict=True):
                row = units.setdefault(record.unit, np.zeros((len(described), len(self.names))))
                at = merged[kind]
                row[at, self.at["records"]] += 1
                row[at, self.at[TRACED_RECORDS]] += record.traced
                for key, value in values.items():
                    if record.traced or self.cheap[self.at[key]]:
                        row[at, self.at[key]] += value
            keys = list(units)
            sums = (np.array([units[k] for k in keys]) if keys
                    else np.zeros((0, len(described), len(self.names))))
            counted = np.array([stratum.counted.get(k, [0, 0]) for k in keys],
                               dtype=float).reshape(-1, 2)  # [bytes, records] read (a ratio)
            self.strata.append((stratum, sums, counted, _draws(rng, len(keys))))

    @staticmethod
    def _classes(kinds: list[tuple[str, int]], traced: list[bool]) -> tuple[dict, list[dict]]:
        """Record classes (format, pairs bucket) merged until each holds MIN_CLASS_TRACED
        traced records (a class of records that reach no sandbox needs none): kind -> class
        index, and each class described."""
        screened: Counter = Counter(kinds)
        held: Counter = Counter(kind for kind, t in zip(kinds, traced, strict=True) if t)
        groups: list[list[tuple[str, int]]] = []
        for fmt in sorted({f for f, _ in screened}):
            run: list[tuple[str, int]] = []
            mine: list[list[tuple[str, int]]] = []
            for bucket in sorted(b for f, b in screened if f == fmt):
                if bucket == 0:
                    mine.append([(fmt, 0)])
                    continue
                run.append((fmt, bucket))
                if sum(held[k] for k in run) >= MIN_CLASS_TRACED:
                    mine.append(run)
                    run = []
            if run:  # the last few: with the class before them (of records with pairs)
                if mine and mine[-1][0][1]:
                    mine[-1] += run
                else:
                    mine.append(run)
            groups += mine
        merged = {kind: i for i, group in enumerate(groups) for kind in group}
        described = [{"format": group[0][0], "pairs": _pairs_label(group[0][1], group[-1][1]),
                      "screened": sum(screened[k] for k in group),
                      "traced": sum(held[k] for k in group)} for group in groups]
        return merged, described

    def _scaled(self, sums: np.ndarray, size: np.ndarray) -> np.ndarray:
        """Estimates from class sums ([..., class, figure]) and the stratum's records ([...])."""
        at = self.at
        records = sums[..., at["records"]]  # [..., class]
        total = np.maximum(records.sum(axis=-1), 1)  # [...]
        whole = sums.sum(axis=-2)  # [..., figure]
        cheap = whole / total[..., None]
        traced = sums[..., at[TRACED_RECORDS]]
        per_record = sums / np.maximum(traced, 1)[..., None]
        # a class without a traced record: the stratum's figures per traced pair, times its pairs
        per_pair = whole / np.maximum(whole[..., at["traced_pairs"]], 1)[..., None]
        guessed = per_pair[..., None, :] * (sums[..., at[PAIRS]] / np.maximum(records, 1))[..., None]
        mean = np.where((traced > 0)[..., None], per_record, guessed)
        dear = (mean * (records / total[..., None])[..., None]).sum(axis=-2)
        return size[..., None] * np.where(self.cheap, cheap, dear)

    def ranges(self, bounds: dict[str, str] | None = None, per_record: int = 0) -> dict[str, dict]:
        """Every figure's estimate and range. ``bounds``: figure -> the figure it cannot
        exceed; ``per_record`` (when set): the kept traces one record can yield at most, which
        bounds the figures named in KEPT_PER_RECORD by records x per_record."""
        point = np.zeros(len(self.names))
        boot = np.zeros((BOOTSTRAP, len(self.names)))
        for stratum, sums, counted, draws in self.strata:
            if not len(sums):
                continue
            size = stratum.estimate()
            here = self._scaled(sums.sum(axis=0), np.array(size))
            again_sums = np.einsum("bu,ucf->bcf", draws, sums)
            if stratum.how == RATIO:
                read = draws @ counted
                size_again = stratum.bytes * read[:, 1] / np.maximum(read[:, 0], 1)
            else:
                size_again = np.full(BOOTSTRAP, size)
            again = self._scaled(again_sums, size_again)
            spread = np.where(self.cheap, math.sqrt(max(0.0, 1 - stratum.screen_fraction)),
                              math.sqrt(max(0.0, 1 - stratum.fraction)))
            point += here
            boot += here + (again - here) * spread * WIDEN
        point, boot = self._bounded(point, np.maximum(boot, 0), bounds or {}, per_record)
        low, high = np.percentile(boot, [LOW, HIGH], axis=0)
        return {name: {"estimate": _round(point[i]), "low": _round(min(low[i], point[i])),
                       "high": _round(max(high[i], point[i]))}
                for i, name in enumerate(self.names)}

    def _bounded(self, point: np.ndarray, boot: np.ndarray, bounds: dict[str, str],
                 per_record: int) -> tuple[np.ndarray, np.ndarray]:
        """The estimate and each resample held under what the flags allow, in order."""
        r = self.at["records"]
        for name in KEPT_PER_RECORD if per_record else ():
            if name in self.at:
                i = self.at[name]
                point[i] = min(point[i], point[r] * per_record)
                boot[:, i] = np.minimum(boot[:, i], boot[:, r] * per_record)
        for name, limit in bounds.items():
            if name in self.at and limit in self.at:
                i, j = self.at[name], self.at[limit]
                point[i] = min(point[i], point[j])
                boot[:, i] = np.minimum(boot[:, i], boot[:, j])
        return point, boot


# kept traces: at most --samples-per-problem a record (the trace stage's own kept runs are not:
# a run the trace filter then rejects does not count towards a problem's samples)
KEPT_PER_RECORD = ("kept:trace_filter",)
# a figure never above another (the pairs the trace stage sees are the pairs sent to it)
BOUNDS = {"seen:trace": PAIRS, "kept:trace": "seen:trace", "rejected:trace": "seen:trace",
          "seen:trace_filter": "kept:trace", "kept:trace_filter": "seen:trace_filter"}


def _draws(rng: np.random.Generator, units: int) -> np.ndarray:
    """BOOTSTRAP resamples of ``units`` units: how often each is drawn in each."""
    if not units:
        return np.zeros((BOOTSTRAP, 0))
    return rng.multinomial(units, [1 / units] * units, size=BOOTSTRAP)


def _round(value: float) -> float:
    """Four significant digits (a small figure, such as GPU hours, keeps its own)."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return value
    return float(round(value, max(0, 3 - math.floor(math.log10(abs(value))))))


# --- the plan ----------------------------------------------------------------------------------

ZERO = {"estimate": 0.0, "low": 0.0, "high": 0.0}


def funnel(figures: dict[str, dict], stages: tuple[str, ...]) -> dict[str, dict]:
    """Per stage: seen, kept, rejected and its reasons, each a range, as the manifest's counts."""
    out = {}
    for stage in stages:
        reasons = {name.split(":", 2)[2]: value for name, value in figures.items()
                   if name.startswith(f"rejected:{stage}:")}
        out[stage] = {"unit": STAGES[stage], "seen": figures.get(f"seen:{stage}", ZERO),
                      "kept": figures.get(f"kept:{stage}", ZERO),
                      "rejected": figures.get(f"rejected:{stage}", ZERO),
                      "reasons": dict(sorted(reasons.items()))}
    return out


def duplicate_note(in_sample: int, fraction: float, scaled: float) -> dict:
    """What a sample tells of duplicates across the corpus. A pair of copies is in the sample
    whole with chance fraction^2, so ``in_sample`` duplicates scaled by 1/fraction undercount
    pairs by a factor of 1/fraction; if every duplicate is one of a pair, the corpus holds
    about in_sample / fraction^2 (larger groups of copies: between the two)."""
    if fraction >= 1:
        return {"in_sample": in_sample, "scaled": scaled, "if_pairs": scaled,
                "note": "the whole input was screened: duplicates are counted exactly"}
    pairs = in_sample / fraction ** 2 if fraction else 0.0
    return {"in_sample": in_sample, "scaled": _round(scaled), "if_pairs": _round(pairs),
            "note": (f"duplicates across the corpus are undercounted: the sample held "
                     f"{in_sample}, scaled to {_round(scaled):g}; a sample of {fraction:.1%} "
                     f"keeps both records of a pair of copies {fraction ** 2:.2%} of the time, so "
                     f"if they are pairs the corpus holds about {_round(pairs):g} "
                     "(the funnel after the screen counts them as kept)")}


def scaled(r: dict, factor: float) -> dict:
    return {key: _round(value * factor) if value is not None else None for key, value in r.items()}


def gpu_throughput(cfg: JobConfig) -> tuple[float | None, str | None]:
    """Output tokens per second per GPU: --gpu-tokens-per-s, else the GPU bench's recorded
    figure (bench/translate_throughput.py --device gpu writes it), else unknown."""
    p = cfg.plan
    if p.gpu_tokens_per_s:
        return p.gpu_tokens_per_s, "--gpu-tokens-per-s"
    if GPU_BENCH_RECORD.exists():
        try:
            record = json.loads(GPU_BENCH_RECORD.read_text())
            figure = (record.get("pipeline") or {}).get("marginal_tok_s") or record["pipeline"]["tok_s"]
            model = record.get("preset") or record.get("model") or "a model"
            return float(figure), (f"{GPU_BENCH_RECORD.name} ({model} on "
                                   f"{record.get('gpu') or 'a GPU'}, {record.get('date', '')})")
        except (ValueError, KeyError, TypeError, OSError):
            return None, None
    return None, None


def build_plan(cfg: JobConfig, job: str, files: list[str], sample: Sample, measured: Measured,
               wall_s: float) -> dict:
    """The plan as one JSON-ready dict (docs/plan.md: the schema)."""
    scaler = Scaler(sample, measured.figures, cfg.trace.seed, cfg.trace.input_format)
    stage = cfg.trace.stage()
    figures = scaler.ranges(BOUNDS, 0 if stage.trace_all else stage.samples_per_problem)
    t = cfg.translate
    uses_llm = t.uses_llm()
    stages = TRACE_STAGES
    if job == "run":  # an LLM's translations are not run: its funnel stops at the requests
        stages += ("make_tasks",) if uses_llm else TRANSLATE_STAGES
    counted = funnel(figures, stages)
    in_sample = sum(f["rejected:dedup"] for f in measured.figures)
    items = figures.get("items", ZERO)
    out: dict = {
        "schema": SCHEMA, "job": job, "input": cfg.input, "files": len(files),
        "bytes": sum(s.bytes for s in sample.strata.values()),
        "sample": {"records": len(sample.records), "fraction": round(sample.fraction, 6),
                   "screen_fraction": round(sample.screen_fraction, 6),
                   "traced_records": sum(r.traced for r in sample.records),
                   "seed": sample.seed,
                   "strata": {n: {**s.to_dict(), "classes": scaler.classes.get(n, [])}
                              for n, s in sample.strata.items()},
                   "trace_threads": measured.threads, "wall_s": round(wall_s, 2)},
        "records": figures["records"],
        "funnel": counted,
        # the screen's decisions are over the screened records: their share is what counts
        "duplicates": duplicate_note(in_sample, sample.screen_fraction,
                                     counted.get("dedup", {}).get("rejected", ZERO)["estimate"]),
    }
    out["screen_core_s"] = figures.get(SCREEN_S, ZERO)
    runs = figures.get("runs", ZERO)
    actor = figures.get("s:actor", ZERO)
    out["trace"] = {"runs": runs, "kept_traces": counted["trace_filter"]["kept"],
                    "sandbox_core_s": figures.get("s:sandbox_s", ZERO),
                    "actor_core_s": actor, "core_hours": scaled(actor, 1 / 3600),
                    "slowest": slowest_share([f["s:actor"] for f in measured.figures
                                              if f["traced_pairs"]]),
                    # each trace actor starts its jails once (per node, not per program)
                    "jail_start_s_per_actor": round(measured.jail_start_s / measured.threads, 3)}
    if job == "run":
        out["translation"] = _translation(cfg, figures, measured, items)
        out["examples"] = _examples(cfg, figures, items)
    out["wall_clock"] = _wall_clock(cfg, job, out)
    out["notes"] = _notes(cfg, out, measured)
    return out


SLOWEST = 0.01  # the share of the sampled programs whose part of the trace time is reported
HEAVY_TAIL = 0.25  # from this part of it on, the plan warns that the figure is unsteady


def slowest_share(seconds: list[float]) -> dict:
    """How much of the sample's trace time its slowest programs took (1%, at least one). A
    few programs that run to the time limit or the trace budget can hold most of it (dev
    set: 10 of 794 programs, 56%); a sample that holds one more or one fewer of them moves
    the figure by more than its range says."""
    ranked = sorted(seconds, reverse=True)
    count = max(1, math.ceil(len(ranked) * SLOWEST))
    total = sum(ranked)
    return {"programs": count, "of": len(ranked),
            "share": round(sum(ranked[:count]) / total, 4) if total else 0.0}


def attempts_per_item(revisions: int, pass_rate: float | None) -> dict:
    """Requests per item with ``revisions`` more turns for the rejected: between 1 (every
    first answer passes) and 1 + revisions; with a first-attempt pass rate p, each attempt
    assumed to pass as often, 1 + (1-p) + (1-p)^2 + ..."""
    rounds = 1 + max(0, revisions)
    estimate = (sum((1 - pass_rate) ** k for k in range(rounds))
                if pass_rate is not None else 1.0 if rounds == 1 else None)
    return {"estimate": estimate, "low": 1.0, "high": float(rounds)}


def _times(r: dict, factor: dict) -> dict:
    """A ranged figure times a ranged factor (an unknown estimate stays unknown)."""
    return {key: (_round(r[key] * factor[key]) if r.get(key) is not None and
                  factor[key] is not None else None) for key in ("estimate", "low", "high")}


def _translation(cfg: JobConfig, figures: dict, measured: Measured, items: dict) -> dict:
    t, p = cfg.translate, cfg.plan
    tps, tps_from = gpu_throughput(cfg)
    renderer = figures.get("render_tokens", ZERO)
    ceiling = figures.get("max_output_tokens", ZERO)
    expected = scaled(items, p.expect_output_tokens) if p.expect_output_tokens else None
    # revisions: requests per item (and their output tokens) between 1 and 1 + --revisions
    per_item = attempts_per_item(t.revisions, p.expect_pass_rate) if t.uses_llm() else \
        {"estimate": 1.0, "low": 1.0, "high": 1.0}
    requests = _times(items, per_item)
    output = {"renderer": renderer, "max": _times(ceiling, per_item),
              "expected": _times(expected, per_item) if expected else None}
    gpus = _gpus(cfg)
    gpu_hours = None
    if t.uses_llm() and tps and gpus:
        basis = output["expected"] or {"estimate": None, "low": renderer["low"],
                                       "high": output["max"]["high"]}
        gpu_hours = scaled(basis, 1 / (tps * 3600))
    return {"translator": "llm" if t.uses_llm() else "render", "model": t.model,
            "tasks": list(t.task_settings(cfg.trace.seed).tasks), "items": items,
            "requests": requests, "revisions": t.revisions if t.uses_llm() else 0,
            "revision_requests": {k: (_round(requests[k] - items[k]) if requests[k] is not None
                                      and items[k] is not None else None) for k in requests},
            "prompt_tokens": figures.get("prompt_tokens", ZERO),
            "prompt_tokens_by": measured.prompt_tokens_by, "context": measured.context,
            "prompt_too_long": figures.get("prompt_too_long", ZERO),
            "prompt_failed": figures.get("prompt_failed", ZERO),
            "output_tokens": output, "gpu_tokens_per_s": tps, "gpu_tokens_per_s_from": tps_from,
            "gpu_hours": gpu_hours,
            "render_core_s": figures.get("s:render", ZERO) if not t.uses_llm() else None}


def _examples(cfg: JobConfig, figures: dict, items: dict) -> dict:
    t, p = cfg.translate, cfg.plan
    if not t.uses_llm():
        examples = figures.get("examples", ZERO)
        rate = examples["estimate"] / items["estimate"] if items["estimate"] else None
        return {**examples, "pass_rate": round(rate, 4) if rate is not None else None,
                "pass_rate_from": "the renderer on the sample"}
    if p.expect_pass_rate is not None:
        # kept after the revisions: each attempt assumed to pass as often as the first
        after = 1 - (1 - p.expect_pass_rate) ** (1 + max(0, t.revisions))
        return {**scaled(items, after), "pass_rate": round(after, 4),
                "pass_rate_from": f"--expect-pass-rate {p.expect_pass_rate:g} at the first "
                                  f"attempt, {t.revisions} revision(s), each passing as often"}
    return {"estimate": None, "low": 0.0, "high": items["high"], "pass_rate": None,
            "pass_rate_from": "unknown: pass --expect-pass-rate; at most every request verifies"}


def _gpus(cfg: JobConfig) -> int:
    t = cfg.translate
    if cfg.plan.gpus is not None:
        return cfg.plan.gpus
    # revisions on engines take a pool of their own (--revision-replicas)
    replicas = t.replicas + (t.revision_replicas if t.revisions > 0 else 0)
    return replicas * t.tensor_parallel_size * t.pipeline_parallel_size if t.uses_engine() else 0


def trace_actors(cfg: JobConfig, cpus: int) -> int:
    """Trace actors on ``cpus`` CPUs, as the job places them on a cluster (two CPUs left to
    the read, filter and write tasks), unless --actors says."""
    return cfg.ray.actors or max(1, cpus - 2 if cpus > 2 else cpus)


def _wall_clock(cfg: JobConfig, job: str, plan: dict) -> dict:
    cpus = cfg.plan.cpus or os.cpu_count() or 1
    actors = trace_actors(cfg, cpus)
    cpu_work = plan["trace"]["actor_core_s"]
    tr = plan.get("translation") or {}
    if tr.get("render_core_s"):
        cpu_work = {k: cpu_work[k] + tr["render_core_s"][k] for k in ("estimate", "low", "high")}
    # every actor starts its jails once, when there is something to run in them
    fixed = plan["trace"]["jail_start_s_per_actor"] if plan["trace"]["runs"]["estimate"] else 0.0
    screen = plan["screen_core_s"]  # before the trace, on every CPU (one, for a small input)
    cpu_s = {k: _round(screen[k] / cpus + v / actors + fixed) for k, v in cpu_work.items()}
    out = {"cpus": cpus, "gpus": 0, "trace_actors": actors, "cpu_s": cpu_s, "gpu_s": None,
           "total_s": cpu_s, "bound_by": "cpu", "advice": None}
    if job != "run" or tr.get("translator") != "llm":
        return out
    gpus = _gpus(cfg)
    out["gpus"] = gpus
    if not gpus or tr.get("gpu_hours") is None:
        out["bound_by"] = None  # the CPU side is known, the GPU side not: total_s is the least
        if not gpus:
            out["advice"] = ("GPU time unknown: pass --gpus, the GPUs that serve the endpoint"
                             if cfg.translate.endpoint else "an LLM run needs GPUs: pass --gpus")
        else:
            out["advice"] = ("GPU time unknown: pass --gpu-tokens-per-s (output tokens a second "
                             "on one GPU; bench/translate_throughput.py --device gpu measures it)")
        return out
    gpu_s = {k: (v * 3600 / gpus if v is not None else None) for k, v in tr["gpu_hours"].items()}
    out["gpu_s"] = {k: (_round(v) if v is not None else None) for k, v in gpu_s.items()}

    def point(r: dict) -> float:  # the range's geometric middle where there is no estimate
        return r["estimate"] if r["estimate"] is not None else math.sqrt(max(r["low"], 1e-9) * r["high"])

    total = {k: max(cpu_s[k], gpu_s[k] if gpu_s[k] is not None else 0) for k in ("low", "high")}
    total["estimate"] = _round(max(cpu_s["estimate"], point(gpu_s)))
    out["total_s"] = {"estimate": total["estimate"], "low": _round(total["low"]),
                      "high": _round(total["high"])}
    cpu_point, gpu_point = cpu_s["estimate"], point(gpu_s)
    out["bound_by"] = "cpu" if cpu_point >= gpu_point else "gpu"
    out["advice"] = _advice(cpu_point, gpu_point, actors, cpus, gpus, cfg)
    return out


def _advice(cpu_s: float, gpu_s: float, actors: int, cpus: int, gpus: int, cfg: JobConfig) -> str:
    """What to change so that neither side waits for the other (the stages stream)."""
    per_engine = cfg.translate.tensor_parallel_size * cfg.translate.pipeline_parallel_size
    if not cpu_s or not gpu_s:
        return "nothing to balance"
    ratio = cpu_s / gpu_s
    if ratio > 1.25:
        need = math.ceil(actors * ratio)
        return (f"the GPUs would wait for the traces {1 - 1 / ratio:.0%} of the time: about "
                f"{need} trace actors (--actors, {need + cpus - actors} CPUs) keep {gpus} GPU(s) "
                "busy, or "
                f"{max(per_engine, math.floor(gpus / ratio / per_engine) * per_engine)} GPU(s) "
                f"suffice for {cpus} CPUs")
    if ratio < 0.8:
        engines = math.ceil(gpus / ratio / per_engine)
        fewer = max(1, math.ceil(actors * ratio)) + (cpus - actors)
        return (f"the trace actors would wait for the GPUs {1 - ratio:.0%} of the time: "
                f"{engines} engine replicas (--replicas, {engines * per_engine} GPUs) keep "
                f"{cpus} CPUs busy" + (f", or {fewer} CPUs suffice" if fewer < cpus else ""))
    return "balanced: neither side waits long for the other"


def _notes(cfg: JobConfig, plan: dict, measured: Measured) -> list[str]:
    notes = [plan["duplicates"]["note"]]
    slowest = plan["trace"]["slowest"]
    if slowest["share"] >= HEAVY_TAIL and plan["sample"]["fraction"] < 1:
        notes.append(f"the trace time is heavy-tailed: {slowest['programs']} of the "
                     f"{slowest['of']} sampled programs took {slowest['share']:.0%} of it, so "
                     "the core-hours can be off by more than their range; a larger --sample "
                     "steadies them")
    if cfg.plan.sample_fraction is None and plan["sample"]["fraction"] >= 1:
        notes.append("the input is no larger than the sample: the plan ran every record")
    tr = plan.get("translation")
    if tr and tr["translator"] == "llm":
        if tr["prompt_tokens_by"] == "characters / 4":
            notes.append(f"prompt tokens are characters / {CHARS_PER_TOKEN}: the tokenizer of "
                         f"{cfg.translate.model} could not be loaded here")
        if tr["context"] is None:
            notes.append("the model's context is not known here (its config did not load): "
                         "prompts too long for it are not counted; pass --max-model-len")
        notes.append("output tokens: the renderer's reasoning is the least a model writes; "
                     "--max-tokens (or the context) the most")
    return notes


def plan_job(cfg: JobConfig, job: str = "run", progress=None) -> dict:
    """Sample the input, run the stages on the sample, scale: the plan."""
    from jobs.plan.sample import draw
    from jobs.sources import list_inputs
    from trace_workers.jail.sandbox import bwrap_path, check_arch

    cfg.validate(engine=False)
    bwrap_path()
    check_arch(cfg.trace.allow_unfiltered_arch)
    started = time.perf_counter()
    p = cfg.plan
    try:
        files = list_inputs(cfg.input)
        sample = draw(files, fraction=p.sample_fraction, records=p.sample, seed=cfg.trace.seed)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise InputUnreadable(f"cannot read the input {cfg.input}: {exc}") from None
    measured = measure(cfg, sample, progress=progress)
    return build_plan(cfg, job, files, sample, measured, time.perf_counter() - started)
