"""The screen: which records are duplicates, near-copies or benchmark items, decided before
any program runs, over the whole corpus, on Ray.

Three Ray steps, none of which holds the corpus in the driver:

1. ``fingerprint_batch`` (a map over the read blocks): for every record that parses, one row
   keyed by its content (exact duplicates share it); for every record that would be traced
   (it passes the program and pair filters), either one ``contaminated`` row (it shares code
   with a benchmark item) or one row per LSH band of its code's MinHash (near-copies share
   one).
2. ``decide_group`` (a ``groupby(key).map_groups``: Ray's shuffle): in a group of one
   content, every record after the first in input order is a ``duplicate_record`` of it; in
   a band, every record after the first is linked to it.
3. ``resolve`` (one Ray task, which reads the groups' blocks from the object store): the links
   joined into groups (union-find; each group keeps its first record, the others are
   ``near_duplicate`` of it), then one decision file per partition of the input files (256
   consecutive files each) that has a dropped record: ``OUT/_screen/part-NNNNN.parquet``
   (file and position -> stage, reason, detail), so that a corpus of 100,000 small objects
   costs a few hundred of them, not one per input. ``OUT/_screen/done.json`` commits them.

The read stage then looks each record up (:class:`ScreenLookup`) and rejects it there, so a
duplicate costs no sandbox time. Which record is kept depends only on input order, so a
resumed run (which reuses the committed decisions) and a fresh one make the same choices.
"""

from __future__ import annotations

import ast
import hashlib
import json
import posixpath
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.screen.code_tokens import code_tokens
from jobs.screen.contamination import BenchmarkIndex, item_code, item_id
from jobs.screen.near_dup import BandHasher, NearDupSettings
from trace_workers.raw_filter import RawFilterConfig, filter_program
from trace_workers.records import Program, input_lines, parse_record
from trace_workers.stats import StageStats
from trace_workers.stream import PROGRAM, Reject

SCREEN_DIR = "_screen"
DONE_FILE = f"{SCREEN_DIR}/done.json"
POSITION_BITS = 40  # order = file index << 40 | position in the file: input order as one int
DEDUP, DECONTAMINATE = "dedup", "decontaminate"
SCREEN_BLOCK = 256  # records per block read by the screen (16-record blocks: 40% slower)

FINGERPRINT_SCHEMA = pa.schema([
    ("key", pa.string()), ("order", pa.int64()), ("where", pa.string()), ("id", pa.string()),
    ("benchmark", pa.string()), ("detail", pa.string()),
    # call format: a hash of the code alone (other calls of the same function are no copies)
    ("call_of", pa.string()),
])
# kind "decision": the record at ``order`` is rejected; kind "link": it is a near-copy
# candidate of the record at ``rep`` (named in ``detail``)
DECISION_SCHEMA = pa.schema([
    ("kind", pa.string()), ("order", pa.int64()), ("rep", pa.int64()), ("stage", pa.string()),
    ("reason", pa.string()), ("benchmark", pa.string()), ("detail", pa.string()),
])
PART_SCHEMA = pa.schema([
    ("file", pa.int64()), ("position", pa.int64()), ("stage", pa.string()),
    ("reason", pa.string()), ("benchmark", pa.string()), ("detail", pa.string()),
])
FILES_PER_PART = 256  # input files whose decisions share one file of OUT/_screen
LAYOUT = 2  # of OUT/_screen: a committed screen of another layout is screened again


class BenchmarkError(ValueError):
    """A --decontaminate file that holds no benchmark item."""


@dataclass(frozen=True)
class ScreenSettings:
    dedup: bool = True
    near_dup: NearDupSettings | None = field(default_factory=NearDupSettings)
    decontaminate: tuple[str, ...] = ()
    ngram: int = 13
    coverage: float = 0.5  # share of a benchmark item's runs a program must hold
    raw_filter: RawFilterConfig = field(default_factory=RawFilterConfig)
    # inputs of at most this many bytes in all are screened in the driver's process (a Ray
    # pipeline's start costs seconds); larger ones on Ray, where the driver holds no record
    in_driver_bytes: int = 16 << 20

    def active(self) -> bool:
        return self.dedup or self.near_dup is not None or bool(self.decontaminate)


def record_order(block: str, where: str) -> tuple[int, int]:
    """(input file index, position in the file) of a record: its place in input order."""
    return int(block.split(":", 1)[0]), int(where.rsplit(":", 1)[1])


def content_key(program: Program) -> str:
    """What makes two records the same: the content-addressed id's fields (and, for the call
    format, whose record id a user may choose, the call itself)."""
    digest = hashlib.sha256()
    parts = [program.funcname, program.refcode, program.problem_description]
    if program.call_format:
        parts += [str(pair.input) for pair in program.pairs]
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:24]


# --- step 1: fingerprints -------------------------------------------------------------------

_INDEXES: dict[str, BenchmarkIndex] = {}


def _index(ref: Any) -> BenchmarkIndex | None:
    """The benchmark index, fetched once per worker process from the object store."""
    if ref is None:
        return None
    key = ref.hex()
    if key not in _INDEXES:
        import ray

        _INDEXES.clear()
        _INDEXES[key] = ray.get(ref)
    return _INDEXES[key]


@lru_cache(maxsize=4)
def _hasher(settings: NearDupSettings) -> BandHasher:
    return BandHasher(settings)


def fingerprint_batch(batch: pa.Table, cfg: ScreenSettings, index_ref: Any = None) -> pa.Table:
    index = _index(index_ref)
    hasher = _hasher(cfg.near_dup) if cfg.near_dup is not None else None
    rows: list[dict] = []
    for where, text, block in input_lines(batch):
        try:
            rows += fingerprint(text, where, block, cfg, index, hasher)
        except Exception:  # noqa: BLE001 - untrusted input: the read stage gives the reason
            continue
    return pa.Table.from_pylist(rows, schema=FINGERPRINT_SCHEMA)


def fingerprint(text: str, where: str, block: str, cfg: ScreenSettings,
                index: BenchmarkIndex | None, hasher: BandHasher | None) -> list[dict]:
    parsed = parse_record(text, where, cfg.raw_filter.input_format)
    if isinstance(parsed, Reject):
        return []  # the read stage rejects it
    file_index, position = record_order(block, where)
    order = file_index << POSITION_BITS | position
    call_of = (hashlib.sha256(parsed.refcode.encode("utf-8", "surrogatepass")).hexdigest()[:24]
               if parsed.call_format else None)
    base = {"order": order, "where": where, "id": parsed.problem_id, "benchmark": None,
            "detail": None, "call_of": call_of}
    rows = [{**base, "key": "x:" + content_key(parsed)}] if cfg.dedup else []
    if index is None and hasher is None:
        return rows
    # only programs that would be traced take part: a near-copy that the filters reject must
    # not take the place of one they keep
    try:
        tree = ast.parse(parsed.refcode)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return rows  # the program filter rejects it
    worked = filter_program(parsed, cfg.raw_filter, StageStats(), tree)
    if not any(row["kind"] == PROGRAM for row in worked):
        return rows
    tokens = code_tokens(parsed.refcode, tree)
    if index is not None and (match := index.match(tokens)) is not None:
        return rows + [{**base, "key": f"c:{order}", "benchmark": match.benchmark,
                        "detail": match.detail()}]
    if hasher is not None:
        rows += [{**base, "key": key} for key in hasher.band_keys(tokens.tokens)]
    return rows


# --- step 2: groups -------------------------------------------------------------------------

def split_by_key(tables: list[pa.Table], parts: int) -> list[pa.Table]:
    """The rows of ``tables`` in ``parts`` tables, each key's rows all in one (a hash shuffle's
    map side; crc32: the same in every process)."""
    import zlib

    table = pa.concat_tables(tables) if tables else FINGERPRINT_SCHEMA.empty_table()
    if parts == 1:
        return [table]
    where = [zlib.crc32(key.encode("utf-8", "surrogatepass")) % parts
             for key in table.column("key").to_pylist()]
    column = pa.array(where, type=pa.int32())
    import pyarrow.compute as pc

    return [table.filter(pc.equal(column, part)) for part in range(parts)]


def decide_groups(tables: list[pa.Table]) -> pa.Table:
    """Every key's records, from the pieces of one shuffle partition: rejects and links."""
    groups: dict[str, list[dict]] = {}
    for table in tables:
        for row in table.to_pylist():
            groups.setdefault(row["key"], []).append(row)
    out: list[dict] = []
    for key, members in groups.items():
        if len(members) > 1 or key.startswith("c:"):
            out += decide_group(key, members)
    return pa.Table.from_pylist(out, schema=DECISION_SCHEMA)


def decide_group(key: str, members: list[dict]) -> list[dict]:
    """One key's records: rejects and links (see the module)."""
    members = sorted(members, key=lambda row: row["order"])
    first = members[0]
    if key.startswith("c:"):
        return [{"kind": "decision", "order": first["order"], "rep": None,
                 "stage": DECONTAMINATE, "reason": "contaminated",
                 "benchmark": first["benchmark"], "detail": first["detail"]}]
    if key.startswith("x:"):
        return [{"kind": "decision", "order": row["order"], "rep": first["order"], "stage": DEDUP,
                 "reason": "duplicate_record", "benchmark": None,
                 "detail": f"the same record as {first['where']} (id {first['id']}), kept"}
                for row in members[1:] if row["order"] != first["order"]]
    # a band: near-copy candidates of the first record, less other calls of its function
    return [{"kind": "link", "order": row["order"], "rep": first["order"], "stage": DEDUP,
             "reason": "near_duplicate", "benchmark": None,
             "detail": f"{first['where']} (id {first['id']})"}
            for row in members[1:] if row["order"] != first["order"]
            and (row["call_of"] is None or row["call_of"] != first["call_of"])]


def shuffle_and_decide(refs: list, parts: int) -> list:
    """Refs of the decision tables of ``parts`` partitions of the fingerprints (a plain hash
    shuffle in Ray tasks: Ray Data's groupby calls a function per key, and most keys are
    one record's band, so it spent seconds per ten thousand rows on calls alone)."""
    import ray

    def fetch(table_refs: list) -> list[pa.Table]:
        return ray.get(table_refs)

    split = ray.remote(lambda table_refs: split_by_key(fetch(table_refs), parts))
    decide = ray.remote(lambda *pieces: decide_groups(list(pieces)))
    chunk = max(1, len(refs) // (4 * parts) + 1)
    pieces = [split.options(num_returns=parts).remote(refs[i:i + chunk])
              for i in range(0, len(refs), chunk)]
    if parts == 1:
        pieces = [[piece] for piece in pieces]
    return [decide.remote(*[piece[part] for piece in pieces]) for part in range(parts)]


# --- step 3: resolve ------------------------------------------------------------------------

def _find(parent: dict[int, int], node: int) -> int:
    root = node
    while parent.get(root, root) != root:
        root = parent[root]
    while parent.get(node, node) != root:  # path compression
        parent[node], node = root, parent[node]
    return root


def resolve_decisions(tables: list[pa.Table]) -> dict[int, dict]:
    """order -> decision for every record the screen rejects. An exact duplicate is that,
    whatever else it is; a group of near-copies keeps its first record in input order."""
    decided: dict[int, dict] = {}
    contaminated: list[dict] = []
    links: list[dict] = []
    for table in tables:
        for row in table.to_pylist():
            if row["kind"] == "link":
                links.append(row)
            elif row["reason"] == "duplicate_record":
                decided[row["order"]] = row
            else:
                contaminated.append(row)
    for row in contaminated:
        decided.setdefault(row["order"], row)
    parent: dict[int, int] = {}
    names: dict[int, str] = {}
    for row in links:
        if row["order"] in decided or row["rep"] in decided:
            continue
        names[row["rep"]] = row["detail"]
        a, b = _find(parent, row["order"]), _find(parent, row["rep"])
        if a != b:
            low, high = min(a, b), max(a, b)
            parent[high] = low
            parent.setdefault(low, low)
    for node in list(parent):
        root = _find(parent, node)
        if root != node:
            decided[node] = {"order": node, "stage": DEDUP, "reason": "near_duplicate",
                             "benchmark": None,
                             "detail": f"a near copy of {names.get(root, root)}, kept"}
    return decided


def resolve(refs: list, output: str) -> dict:
    """Step 3 as one Ray task: decide, write one file per input file, return the counts."""
    import ray

    return write_decisions(resolve_decisions([ray.get(ref) for ref in refs]), output)


def write_decisions(decided: dict[int, dict], output: str) -> dict:
    """One decision file per partition of the input files that has a rejected record; the
    input files with one, and the counts."""
    from jobs.storage import ShardWriter

    per_part: dict[int, list[dict]] = {}
    files: set[int] = set()
    counts: Counter = Counter()
    benchmarks: Counter = Counter()
    for order in sorted(decided):
        row, file_index = decided[order], order >> POSITION_BITS
        files.add(file_index)
        per_part.setdefault(file_index // FILES_PER_PART, []).append(
            {"file": file_index, "position": order & ((1 << POSITION_BITS) - 1),
             "stage": row["stage"], "reason": row["reason"], "benchmark": row["benchmark"],
             "detail": row["detail"]})
        counts[row["reason"]] += 1
        if row["benchmark"]:
            benchmarks[row["benchmark"]] += 1
    writer = ShardWriter(output)
    writer.ensure_dir(SCREEN_DIR)
    for part, rows in per_part.items():
        writer.write(decision_file(part), pa.Table.from_pylist(rows, schema=PART_SCHEMA))
    return {"files": sorted(files), "rejected": dict(counts), "benchmarks": dict(benchmarks)}


def decision_file(part: int) -> str:
    """The decisions of input files ``part * FILES_PER_PART`` to the next part's first."""
    return f"{SCREEN_DIR}/part-{part:05d}.parquet"


# --- the benchmarks -------------------------------------------------------------------------

def load_benchmarks(uris: tuple[str, ...], ngram: int, coverage: float = 0.5) -> BenchmarkIndex:
    """Every ``--decontaminate`` file read (JSONL or Parquet, local or object storage) into one
    index; a file with no record of a known shape is a ValueError (one line for the user)."""
    from jobs.sources import iter_records, list_inputs

    index = BenchmarkIndex(ngram=ngram, min_coverage=coverage)
    for uri in uris:
        for path in list_inputs(uri):
            name = posixpath.basename(path)
            found = 0
            for position, (_, text) in enumerate(iter_records(path), 1):
                try:
                    record = json.loads(text)
                except ValueError:
                    continue
                code = item_code(record) if isinstance(record, dict) else None
                if code is not None:
                    index.add(name, item_id(record, position), code)
                    found += 1
            if not found:
                raise BenchmarkError(f"--decontaminate {path}: no benchmark item in it (records need "
                                 "a code column, or HumanEval's prompt and canonical_solution)")
    return index.freeze()


# --- the driver's part ----------------------------------------------------------------------

def screen_key(cfg: ScreenSettings, versions: list[list]) -> dict:
    """What the committed decisions hold for: the inputs as they were (``input_versions``)
    and the settings that decide."""
    near = cfg.near_dup
    return json.loads(json.dumps({
        "layout": LAYOUT, "inputs": versions, "dedup": cfg.dedup, "decontaminate": list(cfg.decontaminate),
        "ngram": cfg.ngram, "coverage": cfg.coverage, "near_dup": None if near is None else vars(near),
        "raw_filter": vars(cfg.raw_filter),
    }))


def run_screen(cfg: ScreenSettings, files: list[str], output: str, programs_per_block: int) -> dict:
    """Screen the whole input into ``OUT/_screen`` (or reuse a committed screen of the same
    inputs and settings: a resumed run makes the same choices). Returns done.json's content."""
    import ray

    from jobs.datasource import PyEduSource
    from jobs.sources import input_versions
    from jobs.storage import ShardWriter

    writer = ShardWriter(output)
    versions = input_versions(files)  # one look-up per input: the key and the size both use it
    key = screen_key(cfg, versions)
    done = posixpath.join(writer.root, DONE_FILE)
    if writer.fs.get_file_info(done).type == pafs.FileType.File:
        with writer.fs.open_input_stream(done) as handle:
            try:
                committed = json.loads(handle.read().decode())
            except ValueError:
                committed = {}  # cut off: screen again
        if isinstance(committed, dict) and committed.get("key") == key:
            return committed
    started = time.time()
    index = load_benchmarks(cfg.decontaminate, cfg.ngram, cfg.coverage) if cfg.decontaminate else None
    if _input_bytes(versions) <= cfg.in_driver_bytes:
        result = write_decisions(_screen_here(cfg, files, index), output)
    else:
        index_ref = ray.put(index) if index is not None else None
        # big blocks: the screen's blocks are not the resume's unit, and each costs a task
        ds = ray.data.read_datasource(PyEduSource(files, max(programs_per_block, SCREEN_BLOCK)))
        ds = ds.map_batches(fingerprint_batch, fn_kwargs={"cfg": cfg, "index_ref": index_ref},
                            batch_format="pyarrow", batch_size=None)
        parts = max(1, min(64, int(ray.cluster_resources().get("CPU", 1))))
        decisions = shuffle_and_decide(ds.to_arrow_refs(), parts)
        result = ray.get(ray.remote(resolve).remote(decisions, output))
    benchmark_items = len(index) if index is not None else 0
    committed = {"key": key, "token": uuid.uuid4().hex, "files": result["files"],
                 "rejected": result["rejected"],
                 "benchmarks": result["benchmarks"], "benchmark_items": benchmark_items,
                 "wall_s": round(time.time() - started, 3)}
    writer.write_text(DONE_FILE, json.dumps(committed, indent=1))
    return committed


def _input_bytes(versions: list[list]) -> float:
    """The inputs' total size (infinite when one has none to tell, an https:// input)."""
    sizes = [size for _, size, _ in versions]
    return float("inf") if any(size is None for size in sizes) else float(sum(sizes))


def _screen_here(cfg: ScreenSettings, files: list[str], index: BenchmarkIndex | None) -> dict[int, dict]:
    """The same three steps in this process, for an input small enough that starting Ray's
    pipeline would cost more than the work (see ScreenSettings.in_driver_bytes)."""
    from concurrent.futures import ThreadPoolExecutor

    from jobs.sources import PREFETCH_FILES, records_of

    # the files fetched a few at once (the whole input is small here), taken in order
    with ThreadPoolExecutor(PREFETCH_FILES) as pool:
        return screen_records(cfg, enumerate(pool.map(records_of, files)), index)


def screen_records(cfg: ScreenSettings, by_file, index: BenchmarkIndex | None) -> dict[int, dict]:
    """order -> decision for records held in memory: ``by_file`` gives (input file index,
    [(where, text)...]) with ``where`` ending in the record's position in its file (the
    driver's screen; ``groundtrace plan``'s sample)."""
    from jobs.sources import block_key

    hasher = _hasher(cfg.near_dup) if cfg.near_dup is not None else None
    rows: list[dict] = []
    for file_index, records in by_file:
        block = block_key(file_index, 0)  # only its file index counts for the order
        rows += _fingerprints(records, block, cfg, index, hasher)
    table = pa.Table.from_pylist(rows, schema=FINGERPRINT_SCHEMA)
    return resolve_decisions([decide_groups(split_by_key([table], 1))])


def _fingerprints(records: list[tuple[str, str]], block: str, cfg: ScreenSettings,
                  index: BenchmarkIndex | None, hasher: BandHasher | None) -> list[dict]:
    rows: list[dict] = []
    for where, text in records:
        try:
            rows += fingerprint(text, where, block, cfg, index, hasher)
        except Exception:  # noqa: BLE001 - as fingerprint_batch
            continue
    return rows


# --- the read stage's lookup ----------------------------------------------------------------

@dataclass(frozen=True)
class ScreenLookup:
    """What the read stage needs to apply the screen's decisions to a record."""

    output: str
    files: frozenset[int]  # input files with at least one decision
    token: str = ""  # this screen's (done.json): worker processes outlive a run

    def decision(self, block: str | None, where: str) -> dict | None:
        if not self.files or block is None:
            return None
        try:
            file_index, position = record_order(block, where)
        except ValueError:
            return None
        if file_index not in self.files:
            return None
        return _decisions(self.output, file_index // FILES_PER_PART, self.token).get(
            (file_index, position))


@lru_cache(maxsize=4)
def _decisions(output: str, part: int, token: str) -> dict[tuple[int, int], dict]:
    """One partition's decisions, read once per worker process while its blocks come (keyed
    by the screen's token too: a worker that served another run on the same output folder
    must not answer with that run's decisions)."""
    from jobs.sources import filesystem_for

    fs, root = filesystem_for(output)
    table = pq.read_table(posixpath.join(root, decision_file(part)), filesystem=fs)
    return {(row.pop("file"), row.pop("position")): row for row in table.to_pylist()}
