"""The stream protocol: the rows that flow between stages, and what they become.

Every row is ``{"kind": ..., "payload": <JSON text>, "block": ...}``: a tagged union with one
stable Arrow schema, so that work, rejects and counters travel together through Ray Data and
nothing needs a side channel or is dropped silently. ``block`` names the input block the row
comes from (:mod:`jobs.ledger`: a resumed run skips the blocks already written whole).

- Row kinds: the constants below. Stages pass on every row they do not handle.
- Output kinds: the rows the sink writes, each with its folder and Parquet schema
  (:data:`OUTPUT_KINDS`); the code that makes them builds their payloads with these fields.
- :func:`reject` counts a reject and returns its row: one call, so counting and emitting
  cannot drift apart. :func:`map_stream` runs a step over a batch: the step sees the rows it
  handles (with their block's counters) and returns what they become; everything else passes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from trace_workers.stats import STATS as STATS  # the counters' row kind, listed above
from trace_workers.stats import BlockStats, StageStats

# -- row kinds ----------------------------------------------------------------------------
PROGRAM = "program"  # a program and its chosen pairs: work for the trace actors
TRACE = "trace"  # a kept run (written, and translated by `run`)
REQUEST = "request"  # a task item on its way to the LLM
CHECK = "check"  # a proposed input or program on its way to the sandbox
TRANSLATION = "translation"  # a verified reasoning
EXAMPLE = "example"  # a training example
REWRITE = "rewrite"  # a verified rewrite: a new PyEdu program
REJECT = "reject"  # a row that left, with its stage and reason
# STATS (from trace_workers.stats): counters of one input block, summed by the sink

STREAM_SCHEMA = pa.schema([("kind", pa.string()), ("payload", pa.string()), ("block", pa.string())])


def stream_rows(batch: pa.Table) -> list[tuple[str, str, str | None]]:
    """(kind, payload, block) of every row of a stream batch."""
    blocks = (batch.column("block").to_pylist() if "block" in batch.column_names
              else [None] * batch.num_rows)
    return list(zip(batch.column("kind").to_pylist(), batch.column("payload").to_pylist(), blocks,
                    strict=True))


def stream_table(rows: list[dict]) -> pa.Table:
    return table_from_rows(rows, STREAM_SCHEMA)


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """``pa.Table.from_pylist``, for text that UTF-8 cannot hold as it is too (see
    ``utf8_safe``)."""
    try:
        return pa.Table.from_pylist(rows, schema=schema)
    except UnicodeEncodeError:
        return pa.Table.from_pylist(utf8_safe(rows), schema=schema)


def utf8_safe(value: Any) -> Any:
    """``value`` (a str, or lists and dicts of them) with each lone surrogate written as its
    escape: ``"\\ud800"``. JSON's ``"\\ud800"`` is a valid string that Python holds but
    UTF-8 (Arrow, Parquet, a tokenizer) cannot; in a JSON text the escape is the very same
    value again, elsewhere it reads as what it is."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, list):
        return [utf8_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: utf8_safe(item) for key, item in value.items()}
    return value


def in_block(rows: list[dict], block: str | None) -> list[dict]:
    """The rows, each marked as coming from input block ``block``."""
    for row in rows:
        row["block"] = block
    return rows



def row(kind: str, payload: Any) -> dict:
    """A stream row of ``kind`` whose payload is ``payload`` as JSON."""
    return {"kind": kind, "payload": json.dumps(payload, ensure_ascii=False)}


@dataclass
class Reject:
    id: str
    problem_id: str
    stage: str
    reason: str
    detail: str = ""

    def row(self) -> dict:
        return row(REJECT, asdict(self))


def reject(stats: StageStats, stage: str, reason: str, row_id: str, problem_id: str = "",
           detail: str = "") -> dict:
    """Count a reject at ``stage`` and return its row."""
    stats.reject(stage, reason)
    return Reject(row_id, problem_id, stage, reason, detail).row()


Step = Callable[[str, StageStats, int], Iterable[dict]]


def map_stream(batch: pa.Table, step: Step, kinds: tuple[str, ...] = (TRACE,),
               keep: bool = False, stats: BlockStats | None = None,
               time_as: str | None = None,
               finish: Callable[[BlockStats], None] | None = None) -> pa.Table:
    """Run ``step(payload, block_stats, index)`` on every row of ``kinds``; its rows replace
    the row (``keep``: follow it), marked with its block. Other rows pass through; the
    blocks' counters are appended (``time_as``: with the step's time under that name;
    ``finish``: after what it notes)."""
    started = time.perf_counter()
    stats = stats if stats is not None else BlockStats()
    out: list[dict] = []
    for index, (kind, payload, block) in enumerate(stream_rows(batch)):
        if kind not in kinds or keep:
            out.append({"kind": kind, "payload": payload, "block": block})
        if kind in kinds:
            out += in_block(list(step(payload, stats.of(block), index)), block)
    if time_as:
        stats.run.time(time_as, time.perf_counter() - started)
    if finish is not None:
        finish(stats)
    return stream_table(out + stats.rows())


# -- output kinds ---------------------------------------------------------------------------
MESSAGES_DIR = "training/messages"  # JSONL shards, one {"messages": [...]} per line
PARQUET_DIR = "training/parquet"  # the same examples, for datasets.load_dataset("parquet")
TRACE_SCHEMA = pa.schema([
    ("id", pa.string()), ("problem_id", pa.string()), ("problem_description", pa.string()),
    ("io_requirements", pa.string()), ("refcode", pa.string()), ("funcname", pa.string()),
    ("input", pa.string()), ("expected_output", pa.string()), ("returned", pa.string()),
    ("trace", pa.string()), ("trace_lines", pa.int32()), ("status", pa.string()),
    # how the run is told: its lines told (under the story budget) and the digest's level
    # (0: whole; translate.digest folds the loops and calls of a longer run)
    ("story_lines", pa.int32()), ("story_level", pa.int32()),
    # "json": input/expected_output/returned are JSON (PyEdu); "python": an argument list and
    # Python literals (the call format)
    ("value_format", pa.string()),
    # JSON list of [input, expected output] texts: every pair chosen for the program
    ("program_pairs", pa.string()),
])
REJECT_SCHEMA = pa.schema([
    ("id", pa.string()), ("problem_id", pa.string()), ("stage", pa.string()),
    ("reason", pa.string()), ("detail", pa.string()),
])
TRANSLATION_SCHEMA = pa.schema([
    ("id", pa.string()), ("problem_id", pa.string()), ("task", pa.string()),
    # what the training prompt is made of, so that `groundtrace build` needs nothing else
    ("problem_description", pa.string()), ("io_requirements", pa.string()),
    ("refcode", pa.string()), ("funcname", pa.string()), ("input", pa.string()),
    ("value_format", pa.string()), ("question", pa.string()),  # question: variable task
    ("translator", pa.string()), ("model", pa.string()), ("reasoning", pa.string()),
    ("answer_text", pa.string()), ("final_answer", pa.string()), ("returned", pa.string()),
    ("prompt_tokens", pa.int32()), ("generated_tokens", pa.int32()),
    # the step check (translate/steps.py): steps read and right, share of value changes stated
    ("steps_checked", pa.int32()), ("steps_right", pa.int32()), ("step_coverage", pa.float32()),
    # requests this reasoning took: 1, or more when it was revised (translate/revision.py)
    ("attempts", pa.int32()),
])
# a verified rewrite (rewrite task): a new PyEdu program, a valid input for another run
REWRITE_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("origin_id", pa.string()), ("origin_problem_id", pa.string()),
    ("problem_description", pa.string()), ("io_requirements", pa.string()),
    ("refcode", pa.string()), ("funcname", pa.string()), ("ios", pa.string()),
])
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
EXAMPLE_SCHEMA = pa.schema([
    ("id", pa.string()), ("problem_id", pa.string()), ("task", pa.string()),
    ("messages", pa.list_(MESSAGE)), ("tokens", pa.int32()),
])
# stream kind -> (name in the manifest's counts, folder, schema).
# Training examples are also written as LLaMA-Factory JSONL under MESSAGES_DIR.
OUTPUT_KINDS = {
    TRACE: ("traces", "traces", TRACE_SCHEMA),
    TRANSLATION: ("translations", "translations", TRANSLATION_SCHEMA),
    EXAMPLE: ("training", PARQUET_DIR, EXAMPLE_SCHEMA),
    REJECT: ("rejects", "rejects", REJECT_SCHEMA),
    REWRITE: ("rewrites", "rewrites", REWRITE_SCHEMA),
}
