"""The CPU stage before tracing: records to program work rows, rejects and counters."""

from __future__ import annotations

import pyarrow as pa

from trace_workers.raw_filter import RawFilterConfig, filter_program
from trace_workers.records import Reject, parse_record, stream_table
from trace_workers.stats import StageStats


def expand_batch(batch: pa.Table, cfg: RawFilterConfig) -> pa.Table:
    """``map_batches`` function: (where, record) rows in, stream rows out."""
    stats = StageStats()
    rows: list[dict] = []
    wheres = batch.column("where").to_pylist()
    for where, text in zip(wheres, batch.column("record").to_pylist(), strict=True):
        stats.see("read")
        parsed = parse_record(text, where, cfg.input_format)
        if isinstance(parsed, Reject):
            stats.reject("read", parsed.reason)
            rows.append(parsed.row())
            continue
        stats.keep("read")
        rows.extend(filter_program(parsed, cfg, stats))
    rows.append(stats.row())
    return stream_table(rows)
