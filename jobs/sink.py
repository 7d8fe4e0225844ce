"""Where the stream ends: traces, translations, training examples and rejects as shards.

Each write task writes ``<folder>/part-AAA-TTTTTT.parquet`` (attempt, write task) per output
kind for the rows it got, sorted by input block (``training/messages/*.jsonl`` too for
examples; an empty kind gets no file), then its ledger entry (:mod:`jobs.ledger`), and returns
its counts and the ``stats`` rows it summed; the driver adds them up in ``on_write_complete``.
A local file is written under a temporary name and renamed, an object store file is one PUT:
a shard is either absent or whole, and it counts only once its ledger entry is there.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from typing import Any

from ray.data.block import Block, BlockAccessor
from ray.data.datasource import Datasink, WriteResult

from jobs.ledger import LEDGER_DIR, RUN_LEVEL, Entry, block_runs, entry_name, shard_stem
from jobs.storage import ShardWriter
from trace_workers.stats import StageStats
from trace_workers.stream import (
    EXAMPLE,
    MESSAGES_DIR,
    OUTPUT_KINDS,
    STATS,
    stream_rows,
    table_from_rows,
    utf8_safe,
)

OUTPUT_DIRS = ("traces", "translations", "training", "rejects", "rewrites", LEDGER_DIR)
# shard folder -> its label in the manifest's counts (the messages JSONL repeat the Parquet)
LABEL_OF_FOLDER = {folder: label for label, folder, _ in OUTPUT_KINDS.values()}


class StreamSink(Datasink):
    """Writes the output kinds a job makes (``kinds``); any other row kind is a bug."""

    def __init__(self, output: str, kinds: tuple[str, ...] = tuple(OUTPUT_KINDS),
                 rows_per_write: int = 2000, attempt: int = 0, retry_s: float | None = None):
        self.output = output
        self.retry_s = retry_s
        self.kinds = kinds
        self.rows_per_write = rows_per_write
        self.attempt = attempt
        self.stats = StageStats()
        self.written = {OUTPUT_KINDS[kind][0]: 0 for kind in kinds}
        self.files: list[str] = []

    @property
    def min_rows_per_write(self) -> int | None:
        return self.rows_per_write

    def on_write_start(self, schema: Any = None) -> None:
        writer = ShardWriter(self.output, self.retry_s)
        for kind in self.kinds:
            writer.ensure_dir(OUTPUT_KINDS[kind][1])
        if EXAMPLE in self.kinds:
            writer.ensure_dir(MESSAGES_DIR)
        writer.ensure_dir(LEDGER_DIR)

    def write(self, blocks: Iterable[Block], ctx: Any) -> dict:
        rows: dict[str, list[tuple[str, dict]]] = {kind: [] for kind in self.kinds}
        stats: dict[str, StageStats] = {}
        for block in blocks:
            table = BlockAccessor.for_block(block).to_arrow()
            for kind, payload, origin in stream_rows(table):
                origin = origin or RUN_LEVEL
                if kind == STATS:
                    stats.setdefault(origin, StageStats()).merge(json.loads(payload))
                elif kind in rows:
                    rows[kind].append((origin, json.loads(payload)))
                else:
                    raise ValueError(f"a {kind!r} row reached the sink: a stage dropped its work")
        writer = ShardWriter(self.output, self.retry_s)
        stem = shard_stem(self.attempt, ctx.task_idx)
        written, files = {}, {}
        for kind in self.kinds:
            label, sub, schema = OUTPUT_KINDS[kind]
            kind_rows = sorted(rows[kind], key=lambda pair: pair[0])  # by block; stable
            written[label] = len(kind_rows)
            if not kind_rows:
                continue
            runs = block_runs([origin for origin, _ in kind_rows])
            table = table_from_rows([row for _, row in kind_rows], schema)
            files[writer.write(f"{sub}/{stem}.parquet", table)] = runs
            if kind == EXAMPLE:
                lines = "".join(json.dumps({"messages": utf8_safe(row["messages"])},
                                           ensure_ascii=False) + "\n" for _, row in kind_rows)
                files[writer.write_text(f"{MESSAGES_DIR}/{stem}.jsonl", lines)] = runs
        entry = Entry(entry_name(self.attempt, ctx.task_idx),
                      {posixpath.relpath(path, writer.root): runs for path, runs in files.items()},
                      {origin: block_stats.to_dict() for origin, block_stats in stats.items()})
        writer.write_text(entry.name, entry.to_json())  # the commit: after every shard it names
        total = StageStats()
        for block_stats in stats.values():
            total.merge(block_stats.to_dict())
        return {"written": written, "stats": total.to_dict(), "files": list(files)}

    def on_write_complete(self, write_result: WriteResult) -> None:
        for result in write_result.write_returns:
            self.stats.merge(result["stats"])
            for sub, n in result["written"].items():
                self.written[sub] += n
            self.files += result["files"]
