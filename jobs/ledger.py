"""The ledger: what a run has written, so that a killed run resumes where it stopped.

A run reads its input in blocks (:func:`jobs.sources.block_key`). Every row in the stream
carries its block, every counter is kept per block, and every write of the sink publishes its
shards first and then one ledger entry, ``OUT/_ledger/part-AAA-TTTTTT.json``, that names those
shards, the rows of each block in each (rows sorted by block), and the counters per block.
An entry is the commit: a shard no entry names is an orphan of a killed write.

A block is *whole* when its counters, summed over every entry, pass the manifest's accounting
(every record of the block read, every stage balanced and fed by the one before, every kept
row written). Re-running the same command on the same output (:func:`resume`):

1. deletes orphans (shards and temporary files no entry names);
2. rewrites the shards and entries that hold rows of blocks that are not whole, without those
   rows (shards first, then entries: a kill in between is repaired by the next resume);
3. returns the whole blocks, which the source reads past, and their counters, which the
   manifest adds to the new attempt's.

So after a kill at any point the finished output has each row exactly once.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trace_workers.stats import BLOCK_RECORDS, StageStats, accounting_checks

LEDGER_DIR = "_ledger"
RUN_FILE = f"{LEDGER_DIR}/run.json"
RUN_LEVEL = ""  # the block key of counters that belong to no block (timings, peaks)


def entry_name(attempt: int, task_idx: int) -> str:
    return f"{LEDGER_DIR}/part-{attempt:03d}-{task_idx:06d}.json"


def shard_stem(attempt: int, task_idx: int) -> str:
    """Shard file name without suffix: a retried write task writes over its own shards."""
    return f"part-{attempt:03d}-{task_idx:06d}"


def block_runs(blocks: list[str | None]) -> list[list]:
    """[[block, rows], ...] for rows already sorted by block."""
    runs: list[list] = []
    for block in blocks:
        block = block or RUN_LEVEL
        if runs and runs[-1][0] == block:
            runs[-1][1] += 1
        else:
            runs.append([block, 1])
    return runs


@dataclass
class Entry:
    """One committed write: its shards (relative path -> block runs) and counters per block."""

    name: str
    files: dict[str, list[list]]
    stats: dict[str, dict]

    def to_json(self) -> str:
        return json.dumps({"files": self.files, "stats": self.stats}, separators=(",", ":"))


def block_is_whole(stats: StageStats, written: dict[str, int], stages: tuple[str, ...],
                   labels: Iterable[str]) -> bool:
    """Every record of the block read, and the accounting checks hold for its counters."""
    records = stats.peaks.get(BLOCK_RECORDS, 0)
    if records < 1 or stats.seen.get(stages[0], 0) != records:
        return False
    return all(accounting_checks(stats.funnel(stages), {k: written.get(k, 0) for k in labels},
                                 stats.details).values())


@dataclass
class Resumed:
    """What an earlier attempt left that the new one keeps."""

    attempt: int = 0  # the new attempt's number
    whole_blocks: frozenset[str] = frozenset()
    stats: StageStats = field(default_factory=StageStats)
    written: dict[str, int] = field(default_factory=dict)
    blocks_dropped: int = 0  # blocks with rows that were taken out, to be done again
    orphans_deleted: int = 0


class Ledger:
    """Reads and repairs the ledger of one output folder (local or object storage)."""

    def __init__(self, fs: pafs.FileSystem, root: str, label_of: dict[str, str]):
        self.fs, self.root = fs, root
        self.label_of = label_of  # shard folder -> its label in the manifest's counts
        self.unreadable: list[str] = []  # entries that did not parse (see entries)

    def path(self, rel: str) -> str:
        return posixpath.join(self.root, rel)

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path(RUN_FILE)).type == pafs.FileType.File

    def read_text(self, rel: str) -> str:
        with self.fs.open_input_stream(self.path(rel)) as handle:
            return handle.read().decode()

    def run_header(self) -> dict:
        return json.loads(self.read_text(RUN_FILE))

    def entries(self, known: frozenset[str] | set[str] = frozenset()) -> list[Entry]:
        """The committed entries, in name order, less those named in ``known``."""
        selector = pafs.FileSelector(self.path(LEDGER_DIR), allow_not_found=True)
        out = []
        self.unreadable = []
        for info in sorted(self.fs.get_file_info(selector), key=lambda i: i.path):
            name = f"{LEDGER_DIR}/{posixpath.basename(info.path)}"
            if (info.type == pafs.FileType.File and name.startswith(f"{LEDGER_DIR}/part-")
                    and name.endswith(".json") and name not in known):
                try:
                    data = json.loads(self.read_text(name))
                    out.append(Entry(name, dict(data["files"]), dict(data["stats"])))
                except (ValueError, KeyError, TypeError):
                    # never whole: a write on object storage cut off by a signal; the shards
                    # it names are orphans (what was published whole counts, the rest not)
                    self.unreadable.append(name)
        return out

    def label(self, rel: str) -> str | None:
        folder = posixpath.dirname(rel)
        return self.label_of.get(folder)

    def resume(self, stages: tuple[str, ...], writer, shard_dirs: Iterable[str]) -> Resumed:
        """Repair the output of a killed attempt and return what it keeps (see the module).
        ``writer`` (a jobs.sink.ShardWriter on the same folder) writes each file whole."""
        header = self.run_header()
        entries = self.entries()
        per_block: dict[str, StageStats] = {}
        written: dict[str, dict[str, int]] = {}
        for entry in entries:
            for block, data in entry.stats.items():
                per_block.setdefault(block, StageStats()).merge(data)
            for rel, runs in entry.files.items():
                label = self.label(rel)
                for block, n in runs:
                    if label:
                        counts = written.setdefault(block, {})
                        counts[label] = counts.get(label, 0) + n
        labels = sorted(set(self.label_of.values()))
        whole = {block for block, stats in per_block.items() if block != RUN_LEVEL
                 and block_is_whole(stats, written.get(block, {}), stages, labels)}
        dropped = {block for block in set(per_block) | set(written)
                   if block != RUN_LEVEL and block not in whole}
        resumed = Resumed(attempt=header.get("attempt", 0) + 1, whole_blocks=frozenset(whole),
                          blocks_dropped=len(dropped))
        for name in self.unreadable:
            self.fs.delete_file(self.path(name))
        resumed.orphans_deleted = self._delete_orphans(entries, shard_dirs) + len(self.unreadable)
        for entry in entries:
            self._drop_blocks(entry, dropped, writer)
            for block, data in entry.stats.items():
                if block not in dropped:
                    resumed.stats.merge(data)
            for rel, runs in entry.files.items():
                label = self.label(rel)
                if label:
                    resumed.written[label] = resumed.written.get(label, 0) + sum(
                        n for block, n in runs)
        return resumed

    def _delete_orphans(self, entries: list[Entry], shard_dirs: Iterable[str]) -> int:
        """Shards no entry names, and temporary files a killed write left (entries' too)."""
        named = {self.path(rel) for entry in entries for rel in entry.files}
        deleted = 0
        for sub in (*shard_dirs, LEDGER_DIR):
            selector = pafs.FileSelector(self.path(sub), recursive=True, allow_not_found=True)
            for info in self.fs.get_file_info(selector):
                name = posixpath.basename(info.path)
                temporary = name.startswith(".") and name.endswith(".tmp")
                shard_or_temporary = temporary or (sub != LEDGER_DIR and name.startswith("part-"))
                if info.type == pafs.FileType.File and shard_or_temporary and info.path not in named:
                    self.fs.delete_file(info.path)
                    deleted += 1
        return deleted

    def _drop_blocks(self, entry: Entry, dropped: set[str], writer) -> None:
        """Take the rows and counters of ``dropped`` blocks out of one entry: its shards first,
        then the entry itself (or delete what is left empty)."""
        if not any(block in dropped for runs in entry.files.values() for block, _ in runs) \
                and not any(block in dropped for block in entry.stats):
            return
        for rel, runs in list(entry.files.items()):
            keep = [[block, n] for block, n in runs if block not in dropped]
            if len(keep) != len(runs):
                self._rewrite_shard(rel, runs, dropped, writer)
            if keep:
                entry.files[rel] = keep
            else:
                del entry.files[rel]
        entry.stats = {block: data for block, data in entry.stats.items() if block not in dropped}
        if entry.files or entry.stats:
            writer.write_text(entry.name, entry.to_json())
        else:
            self.fs.delete_file(self.path(entry.name))

    def _rewrite_shard(self, rel: str, runs: list[list], dropped: set[str], writer) -> None:
        total = sum(n for _, n in runs)
        remaining = sum(n for block, n in runs if block not in dropped)
        mask = [block not in dropped for block, n in runs for _ in range(n)]
        path = self.path(rel)
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            if remaining:
                raise RuntimeError(f"the ledger names {rel}, which is gone: start over with --fresh")
            return
        if rel.endswith(".parquet"):
            table = pq.read_table(path, filesystem=self.fs)
            rows = table.num_rows
        else:
            lines = self.read_text(rel).splitlines(keepends=True)
            rows = len(lines)
        if rows == remaining:  # taken out already by a resume that was itself killed
            return
        if rows != total:
            raise RuntimeError(f"{rel} holds {rows} rows, the ledger says {total}: "
                               "start over with --fresh")
        if not remaining:
            self.fs.delete_file(path)
        elif rel.endswith(".parquet"):
            writer.write(rel, table.filter(pa.array(mask)))
        else:
            text = "".join(line for line, keep in zip(lines, mask, strict=True) if keep)
            writer.write_text(rel, text)
