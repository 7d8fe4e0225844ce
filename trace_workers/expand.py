"""The CPU stage before tracing: records to program work rows, rejects and counters."""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa

from trace_workers.raw_filter import RawFilterConfig, filter_program
from trace_workers.records import input_lines, note_block_sizes, parse_record
from trace_workers.stats import BlockStats, StageStats
from trace_workers.stream import Reject, in_block, reject, stream_table

# the stages that apply the screen's decisions (jobs.screen.stage), in funnel order
SCREEN_STAGES = ("dedup", "decontaminate")


class Screen(Protocol):
    def decision(self, block: str | None, where: str) -> dict | None: ...


def expand_batch(batch: pa.Table, cfg: RawFilterConfig, screen: Screen | None = None) -> pa.Table:
    """``map_batches`` function: (where, record) rows in, stream rows out."""
    stats = BlockStats()
    note_block_sizes(batch, stats)
    rows: list[dict] = []
    for where, text, block in input_lines(batch):
        decision = screen.decision(block, where) if screen is not None else None
        rows += in_block(expand_record(text, where, cfg, stats.of(block), decision), block)
    return stream_table(rows + stats.rows())


def screened(parsed, where: str, decision: dict | None, counts: StageStats) -> list[dict] | None:
    """The screen's reject of a parsed record (a duplicate, a benchmark item), or None when
    the record goes on; every record goes through both stages' counters."""
    for stage in SCREEN_STAGES:
        counts.see(stage)
        if decision is not None and decision["stage"] == stage:
            if decision.get("benchmark"):
                counts.note("contaminated_by", decision["benchmark"])
            return [reject(counts, stage, decision["reason"], where, parsed.problem_id,
                           decision["detail"] or "")]
        counts.keep(stage)
    return None


def expand_record(text: str, where: str, cfg: RawFilterConfig, stats: StageStats,
                  decision: dict | None = None) -> list[dict]:
    """One record's work row and rejects. A record that breaks the filters themselves (a case
    nobody foresaw) is one reject, ``unreadable_record``, never the end of the job: its counts
    are kept apart until it has gone through."""
    counts = StageStats()
    try:
        counts.see("read")
        parsed = parse_record(text, where, cfg.input_format)
        if isinstance(parsed, Reject):
            rows = [reject(counts, "read", parsed.reason, parsed.id, parsed.problem_id, parsed.detail)]
        else:
            counts.keep("read")
            rows = screened(parsed, where, decision, counts) or filter_program(parsed, cfg, counts)
    except Exception as exc:  # noqa: BLE001 - the record is untrusted input
        stats.see("read")
        return [reject(stats, "read", "unreadable_record", where, "", f"{type(exc).__name__}: {exc}"[:300])]
    stats.merge(counts.to_dict())
    return rows
