"""The translate, verify and build stages as ``map_batches`` functions over the tagged stream.

Every kept trace row is written (it passes through as ``trace``) and is also translated:

    trace --translate--> generation --verify--> translation --build--> training example
              |                         |                      |
              +-> reject (translate)    +-> reject (verify)    +-> reject (build)

With the renderer, one function does all three steps on the CPU. With an LLM, a trace row
becomes a ``request`` row that goes through the vLLM processor (``translate.llm``); the rows
that come out are verified and built by :func:`verify_batch`. Other rows pass through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from trace_workers.records import input_lines, note_block_sizes
from trace_workers.stats import BlockStats, StageStats
from trace_workers.stream import (
    CHECK,
    EXAMPLE,
    REQUEST,
    TRACE,
    TRANSLATION,
    Reject,
    in_block,
    map_stream,
    reject,
    row,
    stream_table,
)
from translate.answer import THINK_END, Verdict, has_thinking, verify
from translate.export import BuildSettings, example_length, length_bin, training_example
from translate.revision import (
    REVISABLE,
    SPEAKS_OF_FEEDBACK,
    attempt_of,
    every_attempt,
    revised,
    without_conversation,
)
from translate.steps import check_steps
from translate.tasks import TaskSettings, expected_answer, task_items, task_of

# What a training prompt is made of: translations carry them, so `build` needs nothing else.
PROMPT_FIELDS = ("problem_description", "io_requirements", "refcode", "funcname", "input",
                 "value_format", "task", "question")
# How the LLM stage marks rows: rows it must not touch, and prompts rejected before the GPU.
PASSTHROUGH = "groundtrace:passthrough"
PROMPT_REJECT = "groundtrace:reject:"


@dataclass
class VerifySettings:
    thinking: bool = True  # the generation must finish its thinking with </think>
    float_rel_tol: float = 1e-6
    # the translators whose stated values and loop counts are checked against the trace: the
    # renderer's steps are the trace's by construction (tests and bench/step_check.py keep it
    # so), and checking them costs about twice what rendering does
    check_steps: tuple[str, ...] = ("llm",)
    min_step_coverage: float = 0.0  # share of the trace's value changes right steps must state


COVERAGE_BINS = 10


def step_verdict(item: dict, verdict: Verdict, cfg: VerifySettings, stats: StageStats,
                 translator_name: str | None = None) -> tuple[str, str, dict]:
    """(reason, detail, counts) of the step check of a reasoning whose answer is right:
    reason "" when it passes. Counted per task whatever the outcome (the run's step
    correctness is the model's, not only the kept rows')."""
    task = task_of(item)
    translator = "render" if translator_name == "render" else "llm"
    if translator not in cfg.check_steps or not task.walks_trace or not item.get("trace"):
        return "", "", {}
    check = check_steps(verdict.answer_text or "", item["trace"], item.get("refcode") or "",
                        item.get("funcname") or "", cfg.float_rel_tol)
    stats.note("steps_checked", task.name, check.checked)
    stats.note("steps_right", task.name, check.right)
    stats.note("step_coverage", f"{min(int(check.coverage * COVERAGE_BINS), COVERAGE_BINS - 1)}")
    for kind, n in check.checked_by_kind.items():
        stats.note("steps_checked_by_kind", f"{task.name}:{kind}", n)
    counts = {"steps_checked": check.checked, "steps_right": check.right,
              "step_coverage": round(check.coverage, 4)}
    if check.wrong:
        stats.note("wrong_steps", f"{task.name}:{check.wrong_kind}")
        return "wrong_step", check.wrong, counts
    if check.coverage < cfg.min_step_coverage:
        detail = (f"right steps state {check.stated} of the trace's {check.changes} value changes "
                  f"({check.coverage:.0%} < {cfg.min_step_coverage:.0%})")
        return "too_few_steps", detail, counts
    return "", "", counts


def judged(item: dict, generation: str, expected: str, python: bool, translator: dict[str, Any],
           verify_cfg: VerifySettings, stats: StageStats) -> tuple[str, str, Verdict, dict]:
    """(reason, detail, verdict, step counts) of one generation against the executed result
    (``expected``, a Python literal when ``python``: expected_answer's) and the run: reason ""
    when it passes every check. Counts nothing but the step check."""
    verdict = verify(generation, expected, thinking=verify_cfg.thinking,
                     rel_tol=verify_cfg.float_rel_tol, python=python)
    if not verdict.ok:
        return verdict.reason, verdict.detail, verdict, {}
    reason, detail, steps = step_verdict(item, verdict, verify_cfg, stats,
                                         translator.get("translator"))
    return reason, detail[:500], verdict, steps


def finish_translation(trace: dict, generation: str, translator: dict[str, Any],
                       verify_cfg: VerifySettings, build_cfg: BuildSettings,
                       stats: StageStats) -> list[dict]:
    """Verify one generation against the executed result and build its training example."""
    stats.see("verify")
    expected, python = expected_answer(trace)
    reason, detail, verdict, steps = judged(trace, generation, expected, python, translator,
                                            verify_cfg, stats)
    if reason:
        return [reject(stats, "verify", reason, trace["id"], trace["problem_id"], detail)]
    stats.keep("verify")
    return accepted(trace, generation, verdict, {**translator, **steps}, expected, build_cfg, stats)


def accepted(item: dict, generation: str, verdict: Verdict, translator: dict[str, Any],
             answer: str, build_cfg: BuildSettings, stats: StageStats) -> list[dict]:
    """A verified item: its translation row and its training example (or build reject)."""
    translation = {
        **{key: item.get(key) for key in PROMPT_FIELDS},
        "id": item["id"], "problem_id": item["problem_id"],
        "translator": translator.get("translator"), "model": translator.get("model"),
        "reasoning": generation, "answer_text": verdict.answer_text,
        "final_answer": verdict.final_answer, "returned": answer,
        "prompt_tokens": translator.get("prompt_tokens"),
        "generated_tokens": translator.get("generated_tokens"),
        "steps_checked": translator.get("steps_checked"),
        "steps_right": translator.get("steps_right"),
        "step_coverage": translator.get("step_coverage"),
        "attempts": translator.get("attempts", 1),
    }
    return [row(TRANSLATION, translation), build_row(item, verdict.answer_text, build_cfg, stats)]


def start_check(item: dict, generation: str, translator: dict[str, Any],
                verify_cfg: VerifySettings, stats: StageStats) -> dict:
    """Input and rewrite tasks: a reject when no input (program) can be read from the
    generation, else a ``check`` row, which translate.sandbox_check runs in the sandbox (the
    caller has counted the item as seen by verify)."""
    verdict = task_of(item).read_proposal(generation, item, verify_cfg.thinking)
    if not verdict.ok:
        return reject(stats, "verify", verdict.reason, item["id"], item["problem_id"], verdict.detail)
    return check_row(item, generation, translator, verdict)


def check_row(item: dict, generation: str, translator: dict[str, Any], verdict: Verdict) -> dict:
    """The ``check`` row of a proposal read from a generation (the sandbox runs it)."""
    check = {"item": without_conversation(item), "generation": generation, "translator": translator,
             "answer_text": verdict.answer_text, "proposed": verdict.final_answer}
    return row(CHECK, check)


def build_row(item: dict, answer_text: str, build_cfg: BuildSettings, stats: StageStats) -> dict:
    """The build stage for one verified reasoning: a training example, or a reject."""
    stats.see("build")
    example = training_example(item, answer_text, build_cfg)
    if isinstance(example, Reject):
        return reject(stats, "build", example.reason, example.id, example.problem_id, example.detail)
    stats.keep("build")
    stats.note("task_examples", task_of(item).name)
    unit, length = example_length(example)
    stats.note(f"example_{unit}", length_bin(length))
    stats.peak(f"longest_example_{unit}", length)
    return row(EXAMPLE, example)


def render_batch(batch: pa.Table, verify_cfg: VerifySettings, build_cfg: BuildSettings,
                 keep_traces: bool = True, task_cfg: TaskSettings | None = None) -> pa.Table:
    """Translate with the LLM-free renderer; trace rows stay in the stream when ``keep_traces``
    (to be written) and each of their task items gains its translation, example or rejects."""
    task_cfg = task_cfg or TaskSettings()
    render_verify = replace(verify_cfg, thinking=False)  # the renderer's whole text is the answer

    def translate(payload: str, block_stats: StageStats, _: int) -> list[dict]:
        out = []
        for item in task_items(json.loads(payload), task_cfg, block_stats):
            block_stats.see("translate")
            try:
                generation = task_of(item).render(item)
            except Exception as exc:  # a trace the renderer cannot read is a reject
                out.append(reject(block_stats, "translate", "render_failed", item["id"],
                                  item["problem_id"], f"{type(exc).__name__}: {exc}"[:300]))
                continue
            block_stats.keep("translate")
            out += finish_translation(item, generation, {"translator": "render"}, render_verify,
                                      build_cfg, block_stats)
        return out

    return map_stream(batch, translate, keep=keep_traces, time_as="translate_s")


def to_requests_batch(batch: pa.Table, keep_traces: bool = True,
                      task_cfg: TaskSettings | None = None) -> pa.Table:
    """Before the LLM: each task item of a trace row becomes a request (and the trace row
    stays, to be written, when ``keep_traces``)."""
    task_cfg = task_cfg or TaskSettings()
    return map_stream(batch, lambda payload, block_stats, _: [
        row(REQUEST, item) for item in task_items(json.loads(payload), task_cfg, block_stats)],
        keep=keep_traces)


TRACE_FIELDS = ("id", "problem_id", "refcode", "funcname", "input", "returned", "trace")
TRANSLATION_FIELDS = ("id", "problem_id", "refcode", "funcname", "input", "answer_text")


def _read_rows(batch: pa.Table, stage: str, required: tuple[str, ...], block_stats: BlockStats):
    """(record, reject row, block) per record of an earlier run's shards; one is None."""
    note_block_sizes(batch, block_stats)
    for where, text, block in input_lines(batch):
        stats = block_stats.of(block)
        stats.see(stage)
        try:
            record = json.loads(text)
        except ValueError as exc:
            yield None, reject(stats, stage, "invalid_json", where, "", str(exc)[:300]), block
            continue
        fields = record if isinstance(record, dict) else {}
        missing = [f for f in required if not isinstance(fields.get(f), str)]
        if missing:
            row_id = fields["id"] if isinstance(fields.get("id"), str) else where
            yield None, reject(stats, stage, "missing_field", row_id, "", ", ".join(missing)), block
            continue
        stats.keep(stage)
        yield record, None, block


def traces_from_records(batch: pa.Table) -> pa.Table:
    """Trace rows of an earlier run (read as JSON records) back into the stream."""
    stats = BlockStats()
    out: list[dict] = []
    for record, rejected, block in _read_rows(batch, "read_traces", TRACE_FIELDS, stats):
        out += in_block([rejected or row(TRACE, record)], block)
    return stream_table(out + stats.rows())


def build_from_records(batch: pa.Table, build_cfg: BuildSettings) -> pa.Table:
    """The build stage alone: verified translations of an earlier run to training examples."""
    stats = BlockStats()
    out: list[dict] = []
    for record, rejected, block in _read_rows(batch, "read_translations", TRANSLATION_FIELDS, stats):
        out += in_block([rejected or build_row(record, record["answer_text"], build_cfg,
                                               stats.of(block))], block)
    return stream_table(out + stats.rows())


def _column(batch: pa.Table, name: str, default: Any = None) -> list:
    if name in batch.column_names:
        return batch.column(name).to_pylist()
    return [default] * batch.num_rows


def verify_batch(batch: pa.Table, model: str, verify_cfg: VerifySettings,
                 build_cfg: BuildSettings, revise: bool = False) -> pa.Table:
    """After the LLM: generations verified and built; the rows it passed through restored.
    ``revise``: a generation rejected for a reason one more turn may cure becomes the item's
    next request (translate/revision.py) instead of a reject; the last round says no more.

    An item is counted once per stage whatever its attempts: ``translate`` and ``verify`` see
    it at its first, and ``verify`` keeps or rejects it at its last (the reject names every
    attempt). Each request, pass and revision is noted by attempt for the bill."""
    errors = _column(batch, "__inference_error__", "")
    # the endpoint translator's own verdict on a request it could not answer (translate.endpoint)
    rejects = _column(batch, "translate_reject", "")
    texts = _column(batch, "generated_text")
    prompt_tokens = _column(batch, "num_input_tokens")
    generated_tokens = _column(batch, "num_generated_tokens")
    cuts = _column(batch, "length_cut", False)
    stops = _column(batch, "early_stop", "")  # the wrong step a streamed answer was stopped at

    def verify_one(payload: str, stats: StageStats, i: int) -> list[dict]:
        item, error = json.loads(payload), errors[i] or rejects[i] or ""
        attempt = attempt_of(item)
        first = attempt == 1
        if first:
            stats.see("translate")
        if error.startswith(PROMPT_REJECT) or error or texts[i] is None:
            if error.startswith(PROMPT_REJECT):
                reason, _, detail = error[len(PROMPT_REJECT):].partition(":")
            else:
                reason, detail = "engine_error", (error or "no generated text")[:300]
            stage = "translate" if first else "verify"  # a revision's item was seen by verify
            return [reject(stats, stage, reason, item["id"], item["problem_id"],
                           every_attempt(item, reason, detail))]
        if first:
            stats.keep("translate")
            stats.see("verify")
        stats.note("requests", f"attempt_{attempt}")
        stats.note("tokens", "prompt", int(prompt_tokens[i] or 0))
        stats.note("tokens", "generated", int(generated_tokens[i] or 0))
        translator = {"translator": "llm", "model": model, "prompt_tokens": prompt_tokens[i],
                      "generated_tokens": generated_tokens[i], "attempts": attempt}
        reason, detail, verdict = "", "", None
        if verify_cfg.thinking:
            # models that do not think answer without a thinking block: checked whole (the
            # manifest and the progress line say how many answers thought)
            thought = has_thinking(texts[i])
            stats.note("answers", "thinking" if thought else "no_thinking")
            if cuts[i] and THINK_END not in texts[i]:
                reason, detail = "unfinished_thinking", (
                    f"cut at the token limit ({generated_tokens[i]} tokens) before {THINK_END}")
        if not reason and stops[i]:
            # the answer so far, checked as a whole answer is (its steps counted by kind): the
            # check finds the wrong step the stream was stopped at
            stats.note("early_stops", "wrong_step")
            stats.note("tokens", "early_stopped", int(generated_tokens[i] or 0))
            text = texts[i]
            answer = text.split(THINK_END, 1)[1] if THINK_END in text else text
            _, found, steps = step_verdict(item, Verdict(True, answer_text=answer), verify_cfg,
                                           stats, "llm")
            translator.update(steps)
            reason, detail = "wrong_step", (
                f"{found or stops[i]} (stopped at {generated_tokens[i]} tokens)")
        if not reason and task_of(item).runs_proposal:
            proposal = task_of(item).read_proposal(texts[i], item, verify_cfg.thinking)
            if proposal.ok:
                return [check_row(item, texts[i], translator, proposal)]
            reason, detail = proposal.reason, proposal.detail
        if not reason:
            expected, python = expected_answer(item)
            reason, detail, verdict, steps = judged(item, texts[i], expected, python, translator,
                                                    verify_cfg, stats)
            translator.update(steps)
        spoken = None if reason or first else SPEAKS_OF_FEEDBACK.search(verdict.answer_text or "")
        if spoken:
            reason, detail = "speaks_of_feedback", f"the revision says {spoken.group(0)!r}"
        if not reason:
            stats.keep("verify")
            stats.note("passed", f"attempt_{attempt}")
            return accepted(without_conversation(item), texts[i], verdict, translator,
                            expected, build_cfg, stats)
        if revise and reason in REVISABLE:
            stats.note("revisions", reason)
            return [row(REQUEST, revised(item, texts[i], reason, detail))]
        return [reject(stats, "verify", reason, item["id"], item["problem_id"],
                       every_attempt(item, reason, detail))]

    return map_stream(batch, verify_one, kinds=(REQUEST,))
