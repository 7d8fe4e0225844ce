"""The CPU stage before tracing: records to program work rows, rejects and counters."""

from __future__ import annotations

import pyarrow as pa

from trace_workers.raw_filter import RawFilterConfig, filter_program
from trace_workers.records import Reject, in_block, input_lines, note_block_sizes, parse_record, stream_table
from trace_workers.stats import BlockStats


def expand_batch(batch: pa.Table, cfg: RawFilterConfig) -> pa.Table:
    """``map_batches`` function: (where, record) rows in, stream rows out."""
    stats = BlockStats()
    note_block_sizes(batch, stats)
    rows: list[dict] = []
    for where, text, block in input_lines(batch):
        block_stats = stats.of(block)
        block_stats.see("read")
        parsed = parse_record(text, where, cfg.input_format)
        if isinstance(parsed, Reject):
            block_stats.reject("read", parsed.reason)
            rows += in_block([parsed.row()], block)
            continue
        block_stats.keep("read")
        rows += in_block(filter_program(parsed, cfg, block_stats), block)
    return stream_table(rows + stats.rows())
