"""A seeded sample of a corpus, spread over its files, without reading the corpus.

What ``groundtrace plan`` runs the real stages on. Every record of the input has the same
chance to be in the sample, and the sample says how many records the whole input holds. The
sample has two nested parts: the *screened* records (``screen_fraction``), which go through
the cheap stages (the screen, the filters: about 3 ms a record) and give the record count,
and among them the *traced* records (``fraction``), which also go through the sandbox and the
translation (seconds a record). Each unit of the input draws one seeded number u; it is
screened when u < screen_fraction and traced when u < fraction.

- plain JSONL (local or object storage): the unit is a byte range ("chunk") of a file; the
  chunks drawn are read with ranged reads (neighbours in one). A record belongs to the chunk
  its first byte lies in (as Hadoop splits a text file), so no record is in two chunks and
  none is missed. The record count is exact for inputs of at most COUNT_BYTES (a scan for
  line ends), else the input's bytes times the records per byte of the chunks read (a ratio).
- Parquet: the unit is a row; the row counts are in the files' footers (exact), and each row
  group that holds a row drawn is read once.
- compressed JSONL and https:// inputs cannot be read from the middle: a file is read through
  and the unit is a record (its count exact). With many such files only a seeded subset of
  them is read (at least ``MIN_THROUGH_FILES``), the unit is the file, and the count a ratio
  over their compressed bytes.

:mod:`jobs.plan.estimate` resamples the units to put a range on every figure it scales.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import lzma
import math
import posixpath
import re
import threading
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq
import zstandard

from jobs.sources import PARQUET_SUFFIXES, input_versions, iter_records, json_default
from jobs.storage import raw_filesystem_for

CHUNK_MIN = 4 << 10  # bytes of one chunk at least...
CHUNK_MAX = 1 << 20  # ...and at most
UNITS_WANTED = 256  # chunks a traced sample should hold, where the input allows (its spread)
SCREEN_FACTOR = 3  # the screened part is this many times the traced part (at most all of it)
COUNT_BYTES = 64 << 20  # plain JSONL inputs up to this size have their records counted exactly
READ_AHEAD = 64 << 10  # bytes read at once past a chunk's end, for the line that runs over it
READ_THREADS = 16  # ranged reads at once (object storage answers each after a round trip)
MIN_THROUGH_FILES = 16  # compressed files read through at least, when only some are
PROBE_BYTES = 1 << 20  # bytes of a compressed file decompressed to guess its records per byte
MAX_SOURCES = 8  # sources of one shape sampled apart at most (the rest: one group)
MIN_SOURCE_SHARE = 0.02  # a source of fewer of its shape's bytes joins the rest

EXACT, RATIO = "exact", "ratio"


@dataclass(frozen=True)
class SampledRecord:
    file_index: int
    position: int  # the record's place in its file: line, row, or byte offset (chunks)
    where: str
    text: str
    stratum: str
    unit: str  # what it was drawn with; the records of one unit are resampled together
    traced: bool  # in the traced part (else screened only)


@dataclass
class Stratum:
    """Files read one way, and how many records they hold: exactly (``records``: all of
    them read or counted, Parquet footers) or as a ratio, their bytes times the records per
    byte of the units read (``counted``: unit -> [bytes, records])."""

    name: str
    how: str  # EXACT or RATIO
    files: int = 0
    bytes: int = 0
    records: int = 0  # EXACT: the files' records
    counted: dict[str, list[int]] = field(default_factory=dict)  # RATIO: the units read
    fraction: float = 0.0  # the share of the records traced (expected)
    screen_fraction: float = 0.0  # the share of the records screened (expected)

    def estimate(self) -> float:
        """Records these files hold."""
        if self.how == EXACT:
            return float(self.records)
        read = sum(b for b, _ in self.counted.values())
        return self.bytes * sum(r for _, r in self.counted.values()) / read if read else 0.0

    def to_dict(self) -> dict:
        return {"files": self.files, "bytes": self.bytes, "how": self.how,
                "records": round(self.estimate(), 1), "fraction": round(self.fraction, 6),
                "screen_fraction": round(self.screen_fraction, 6)}


@dataclass
class Sample:
    records: list[SampledRecord]  # every record screened, in input order
    strata: dict[str, Stratum]
    fraction: float  # the share of the input's records traced
    screen_fraction: float  # the share screened
    seed: int

    def total_records(self) -> float:
        return sum(s.estimate() for s in self.strata.values())


def _kind(uri: str, size: int | None) -> str:
    name = posixpath.basename(uri.split("?", 1)[0]).lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if size is None or uri.startswith(("http://", "https://")) or not name.endswith(
            (".jsonl", ".json", ".ndjson")):
        return "through"
    return "jsonl"


def _name(uri: str) -> str:
    return posixpath.basename(uri.split("?", 1)[0])


def _chance(seed: int, *key: object) -> float:
    """A number in [0, 1) fixed by the seed and the key."""
    text = ":".join(str(part) for part in (seed, *key)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2 ** 64


def draw(files: list[str], *, fraction: float | None = None, records: int | None = None,
         seed: int = 0) -> Sample:
    """A seeded sample: ``fraction`` of the input's records traced (or about ``records`` of
    them), SCREEN_FACTOR times as many screened."""
    versions = input_versions(files)
    kinds = [_kind(uri, size) for uri, size, _ in versions]
    if fraction is None:
        guess = sum(_guess_records(uri, size, kind)
                    for (uri, size, _), kind in zip(versions, kinds, strict=True))
        fraction = 1.0 if not guess else min(1.0, (records or 0) / guess)
    fraction = min(1.0, max(fraction, 0.0))
    screen = min(1.0, SCREEN_FACTOR * fraction)
    by_kind: dict[str, list[tuple[int, str, int | None]]] = defaultdict(list)
    for index, ((uri, size, _), kind) in enumerate(zip(versions, kinds, strict=True)):
        by_kind[kind].append((index, uri, size))
    strata: dict[str, Stratum] = {}
    taken: list[SampledRecord] = []
    for kind, read in (("jsonl", _chunks), ("parquet", _rows), ("through", _through)):
        groups = source_groups(by_kind[kind])
        for salt, (group, files_of) in enumerate(groups.items()):
            name = kind if len(groups) == 1 else f"{kind}:{group}"
            strata[name] = read(files_of, fraction, screen, seed, taken, name, salt)
    taken.sort(key=lambda r: (r.file_index, r.position))
    return Sample(taken, strata, fraction, screen, seed)


def source_of(uri: str) -> str:
    """The source a file belongs to, by its name: its folder and its name with each run of
    digits as ``#`` (``crawl-a/part-00017.jsonl`` -> ``crawl-a/part-#.jsonl``): the numbered
    parts of one export are one source, files named apart are sources apart."""
    parts = uri.split("?", 1)[0].rstrip("/").split("/")
    folder = parts[-2] if len(parts) > 1 else ""
    return re.sub(r"\d+", "#", f"{folder}/{parts[-1]}")


def source_groups(files: list[tuple[int, str, int | None]]) -> dict[str, list]:
    """Files of one shape grouped by source (:func:`source_of`), each group a stratum of its
    own: sampled, counted and scaled apart, then summed. A source of less than MIN_SOURCE_SHARE
    of the bytes, and any past the MAX_SOURCES largest, go to one group, ``other``: a stratum
    too small to hold traced records would tell nothing of its own."""
    groups: dict[str, list] = defaultdict(list)
    for entry in files:
        groups[source_of(entry[1])].append(entry)
    if len(groups) <= 1:
        return {"all": files} if files else {}
    size = {name: sum(s or 0 for _, _, s in group) for name, group in groups.items()}
    total = sum(size.values()) or 1
    ranked = sorted(groups, key=lambda name: (-size[name], name))
    kept = [name for name in ranked[:MAX_SOURCES] if size[name] / total >= MIN_SOURCE_SHARE]
    out = {name: sorted(groups[name]) for name in sorted(kept)}
    rest = sorted(entry for name in ranked if name not in out for entry in groups[name])
    if rest:
        if not out:
            return {"all": files}
        out["other"] = rest
    return out


# --- plain JSONL: byte ranges ------------------------------------------------------------------

def chunk_size(total_bytes: int, fraction: float) -> int:
    """Chunks small enough that the traced part holds UNITS_WANTED of them (a spread sample),
    but not so small that each read fetches a record or less."""
    wanted = total_bytes * fraction / UNITS_WANTED
    return int(min(CHUNK_MAX, max(CHUNK_MIN, wanted)))


def _chunks(files: list[tuple[int, str, int | None]], fraction: float, screen: float, seed: int,
            taken: list[SampledRecord], name: str = "jsonl", salt: int = 0) -> Stratum:
    sizes = np.array([size or 0 for _, _, size in files], dtype=np.int64)
    total = int(sizes.sum())
    size = chunk_size(total, fraction)
    per_file = -(-sizes // size)  # chunks of each file
    first = np.concatenate([[0], np.cumsum(per_file)[:-1]])
    count = int(per_file.sum())
    rng = np.random.default_rng([seed, salt] if salt else seed)
    # each chunk screened with chance ``screen`` and, if so, traced with chance fraction/screen
    # (as one number u per chunk would: screened when u < screen, traced when u < fraction),
    # drawn in memory for the chunks chosen only (a terabyte holds hundreds of millions)
    chosen = (np.arange(count) if screen >= 1 else
              np.sort(rng.choice(count, size=rng.binomial(count, screen), replace=False)))
    traced_of = dict(zip(chosen.tolist(), (rng.random(len(chosen)) < fraction / max(screen, 1e-12))
                         .tolist(), strict=True))
    # exact where every chunk is read, or where a scan for line ends costs little (a count
    # then beats a ratio's spread); else a ratio over the chunks read
    stratum = Stratum(name, EXACT if screen >= 1 or total <= COUNT_BYTES else RATIO,
                      files=len(files), bytes=total)
    spans: list[tuple[int, int, int]] = []  # (file position in ``files``, start, end): read
    for number in chosen.tolist():
        at = int(np.searchsorted(first, number, side="right")) - 1
        start = (number - int(first[at])) * size
        end = min(int(sizes[at]), start + size)
        stratum.screen_fraction += (end - start) / max(1, total)
        stratum.fraction += (end - start) / max(1, total) if traced_of[number] else 0.0
        if spans and spans[-1][0] == at and spans[-1][2] == start:
            spans[-1] = (at, spans[-1][1], end)  # a neighbour: one read
        else:
            spans.append((at, start, end))
        if stratum.how == RATIO:
            stratum.counted[f"{files[at][0]}@{start}"] = [end - start, 0]
    with _Files() as opened, ThreadPoolExecutor(READ_THREADS) as pool:
        read = pool.map(lambda span: chunk_lines(opened.get(files[span[0]][1]), int(sizes[span[0]]),
                                                 span[1], span[2]), spans)
        for (at, _, _), lines in zip(spans, read, strict=True):
            index, uri, _ = files[at]
            for offset, text in lines:
                chunk = offset // size
                unit = f"{index}@{chunk * size}"
                if stratum.how == RATIO:
                    stratum.counted[unit][1] += 1
                traced = traced_of[int(first[at]) + chunk]
                taken.append(SampledRecord(index, offset, f"{_name(uri)}:{offset}", text,
                                           name, unit, traced))
            stratum.records += len(lines)
        if stratum.how == EXACT and screen < 1:  # the chunks read are not all of it: count
            stratum.records = sum(pool.map(lambda f: count_records(opened.get(f[1]), f[2] or 0), files))
    return stratum


def count_records(handle, size: int) -> int:
    """The non-blank lines of a whole file (what jobs.sources reads as records)."""
    count, tail, offset = 0, b"", 0
    while offset < size:
        block = handle.read_at(min(8 << 20, size - offset), offset)
        offset += len(block)
        lines = (tail + block).split(b"\n")
        tail = lines.pop()
        count += sum(1 for line in lines if line.strip())
    return count + (1 if tail.strip() else 0)


class _Files:
    """Input files opened once for ranged reads from several threads (pyarrow's read_at)."""

    def __init__(self):
        self.handles: dict = {}
        self.lock = threading.Lock()

    def get(self, uri: str):
        with self.lock:
            if uri not in self.handles:
                fs, path = raw_filesystem_for(uri)
                self.handles[uri] = fs.open_input_file(path)
            return self.handles[uri]

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *_) -> None:
        for handle in self.handles.values():
            handle.close()


def chunk_lines(handle, size: int, start: int, end: int) -> list[tuple[int, str]]:
    """(byte offset, text) of the non-blank lines that start in [start, end) of a file open
    for random access (a pyarrow RandomAccessFile: on object storage, ranged reads)."""
    begin = max(0, start - 1)  # the byte before: is ``start`` itself a line's first byte?
    buffer = handle.read_at(min(size, end + READ_AHEAD) - begin, begin)
    base = begin

    def line_end(offset: int) -> int:
        nonlocal buffer
        while True:
            found = buffer.find(b"\n", offset - base)
            if found >= 0:
                return base + found + 1
            if base + len(buffer) >= size:
                return size
            buffer += handle.read_at(min(READ_AHEAD, size - base - len(buffer)), base + len(buffer))

    offset = start if start == 0 else line_end(begin)
    lines: list[tuple[int, str]] = []
    while offset < end and offset < size:
        stop = line_end(offset)
        raw = buffer[offset - base:stop - base]
        if offset == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.strip():
            lines.append((offset, raw.decode("utf-8", "replace")))
        offset = stop
    return lines


# --- Parquet: rows -----------------------------------------------------------------------------

def _rows(files: list[tuple[int, str, int | None]], fraction: float, screen: float, seed: int,
          taken: list[SampledRecord], name: str = "parquet", salt: int = 0) -> Stratum:
    stratum = Stratum(name, EXACT, files=len(files),
                      bytes=sum(size or 0 for _, _, size in files),
                      fraction=fraction, screen_fraction=screen)
    for index, uri, _ in files:
        mine: list[SampledRecord] = []
        try:
            stratum.records += _parquet_rows(index, uri, fraction, screen, seed, mine, name)
        except Exception:  # noqa: BLE001 - a damaged file: read as the job reads it
            mine = []
            stratum.records += _read_through(index, uri, fraction, screen, seed, name, mine)
        taken += mine
    return stratum


def _parquet_rows(index: int, uri: str, fraction: float, screen: float, seed: int,
                  taken: list[SampledRecord], name: str = "parquet") -> int:
    """The rows of one Parquet file drawn, each row group read once; its row count."""
    fs, path = raw_filesystem_for(uri)
    with fs.open_input_file(path) as handle:
        reader = pq.ParquetFile(handle)
        rows = reader.metadata.num_rows
        rng = np.random.default_rng([seed, index])
        first = 0
        for group in range(reader.metadata.num_row_groups):
            count = reader.metadata.row_group(group).num_rows
            draws = rng.random(count)  # one number a row, a row group at a time
            chosen = np.nonzero(draws < screen)[0]
            if len(chosen):
                table = reader.read_row_group(group)
                for row, values in zip(chosen, table.take(chosen).to_pylist(), strict=True):
                    position = first + int(row) + 1  # as jobs.sources numbers rows
                    taken.append(SampledRecord(
                        index, position, f"{_name(uri)}:{position}",
                        json.dumps(values, default=json_default), name,
                        f"{index}#{position}", bool(draws[row] < fraction)))
            first += count
    return rows


# --- compressed JSONL, https://: read through --------------------------------------------------

def _through(files: list[tuple[int, str, int | None]], fraction: float, screen: float, seed: int,
             taken: list[SampledRecord], name: str = "through", salt: int = 0) -> Stratum:
    sized = all(size is not None for _, _, size in files)
    wanted = min(len(files), max(MIN_THROUGH_FILES, math.ceil(screen * len(files))))
    some = sized and wanted < len(files)
    read = (sorted(sorted(files, key=lambda f: _chance(seed, "file", f[0]))[:wanted]) if some
            else files)
    scale = len(files) / len(read)  # the files read stand for all of them
    stratum = Stratum(name, RATIO if some else EXACT, files=len(files),
                      bytes=sum(size or 0 for _, _, size in files),
                      fraction=fraction, screen_fraction=screen)
    for index, uri, size in read:
        count = _read_through(index, uri, min(1.0, fraction * scale), min(1.0, screen * scale),
                              seed, name, taken, per_file=some)
        stratum.records += count
        if some:
            stratum.counted[str(index)] = [size or 0, count]
    return stratum


def _read_through(index: int, uri: str, fraction: float, screen: float, seed: int, stratum: str,
                  taken: list[SampledRecord], per_file: bool = False) -> int:
    """Read a file through, taking each record with chance ``screen`` (traced: ``fraction``);
    its records' count. A record's unit is itself, or its file (``per_file``: when only some
    files are read, the files are what was drawn)."""
    count = 0
    for where, text in iter_records(uri):
        count += 1
        position = int(where.rsplit(":", 1)[1])
        chance = _chance(seed, index, position)
        if chance < screen:
            taken.append(SampledRecord(index, position, where, text, stratum,
                                       str(index) if per_file else f"{index}#{position}",
                                       chance < fraction))
    return count


# --- how many records, roughly, before sampling (--sample N) -----------------------------------

def _guess_records(uri: str, size: int | None, kind: str) -> float:
    """A quick guess of one file's records: enough to turn ``--sample N`` into a fraction."""
    try:
        fs, path = raw_filesystem_for(uri)
        if kind == "parquet":
            with fs.open_input_file(path) as handle:
                return float(pq.ParquetFile(handle).metadata.num_rows)
        if not size:
            return 0.0
        with fs.open_input_file(path) as handle:
            head = handle.read_at(min(size, PROBE_BYTES), 0)
        text = _decompressed_head(_name(uri).lower(), head)
        lines = text.count(b"\n") or 1
        return size * lines / len(head)
    except Exception:  # noqa: BLE001 - a guess: the sample itself reads the file properly
        return 0.0


def _decompressed_head(name: str, head: bytes) -> bytes:
    """As much of a file's start as ``head`` decompresses to (a stream cut anywhere)."""
    if name.endswith(".gz"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(head)
    if name.endswith(".bz2"):
        return bz2.BZ2Decompressor().decompress(head)
    if name.endswith(".xz"):
        return lzma.LZMADecompressor().decompress(head)
    return head
