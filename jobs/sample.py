"""A seeded sample of a corpus, spread over its files, without reading the corpus.

What ``groundtrace plan`` runs the real stages on. Every record of the input has the same
chance to be in the sample, and the sample says how many records the whole input holds:

- plain JSONL (local or object storage): the files are cut into byte ranges ("chunks") and a
  seeded share of the chunks is read, each with one ranged read; a record belongs to the chunk
  its first byte lies in (as Hadoop splits a text file), so no record is in two chunks and
  none is missed. The input's record count is its bytes times the records per byte of the
  chunks read (a ratio estimate).
- Parquet: the row counts are in the files' footers (exact); a seeded share of the rows is
  read, each row group that holds a chosen row once.
- compressed JSONL and https:// inputs cannot be read from the middle: a file is read through
  and a seeded share of its records taken (its count exact). With many such files, a seeded
  subset of them is read (at least ``MIN_THROUGH_FILES``) and the count is a ratio over
  their compressed bytes.

Each record comes with the unit it was sampled with (a chunk, a row, a record, a file) and its
stratum: :mod:`jobs.plan` resamples the units to put a range on every figure it scales.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import lzma
import math
import posixpath
import random
import zlib
from collections import defaultdict
from dataclasses import dataclass, field

import pyarrow.parquet as pq
import zstandard

from jobs.sources import PARQUET_SUFFIXES, _json_default, input_versions, iter_records
from jobs.storage import raw_filesystem_for

CHUNK_MIN = 4 << 10  # bytes of one chunk at least...
CHUNK_MAX = 1 << 20  # ...and at most
UNITS_WANTED = 256  # chunks a sample should hold at least, where the input allows (its spread)
READ_AHEAD = 64 << 10  # bytes read at once past a chunk's end, for the line that runs over it
MIN_THROUGH_FILES = 16  # compressed files read through at least, when only some are
PROBE_BYTES = 1 << 20  # bytes of a compressed file decompressed to guess its records per byte

EXACT, RATIO = "exact", "ratio"


@dataclass(frozen=True)
class SampledRecord:
    file_index: int
    position: int  # the record's place in its file: line, row, or byte offset (chunks)
    where: str
    text: str
    stratum: str
    unit: str  # what it was sampled with; records of one unit are resampled together


@dataclass
class Stratum:
    """Files read one way: how many records they hold (``records``, exact) or what tells it
    (their bytes against the bytes and records of the units read: a ratio)."""

    name: str
    how: str  # EXACT or RATIO
    files: int = 0
    bytes: int = 0
    records: int | None = None  # EXACT: the files' records
    unit_bytes: dict[str, int] = field(default_factory=dict)  # RATIO: bytes each unit read covers
    unit_records: dict[str, int] = field(default_factory=dict)  # records each unit read holds
    fraction: float = 0.0  # the share of this stratum's records the sample holds (expected)

    def estimate(self) -> float:
        """Records these files hold (exact, or bytes x records per byte of the units read)."""
        if self.how == EXACT:
            return float(self.records or 0)
        read = sum(self.unit_bytes.values())
        return self.bytes * sum(self.unit_records.values()) / read if read else 0.0

    def to_dict(self) -> dict:
        return {"files": self.files, "bytes": self.bytes, "how": self.how,
                "records": round(self.estimate(), 1), "units_read": len(self.unit_records),
                "fraction": round(self.fraction, 6)}


@dataclass
class Sample:
    records: list[SampledRecord]
    strata: dict[str, Stratum]
    fraction: float  # the share of the input's records asked for
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
    """A number in [0, 1) fixed by the seed and the key: who is in the sample."""
    text = ":".join(str(part) for part in (seed, *key)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2 ** 64


def draw(files: list[str], *, fraction: float | None = None, records: int | None = None,
         seed: int = 0) -> Sample:
    """A seeded sample of ``fraction`` of the input's records (or about ``records`` of them)."""
    versions = input_versions(files)
    kinds = [_kind(uri, size) for uri, size, _ in versions]
    if fraction is None:
        guess = sum(_guess_records(uri, size, kind)
                    for (uri, size, _), kind in zip(versions, kinds, strict=True))
        fraction = 1.0 if not guess else min(1.0, (records or 0) / guess)
    fraction = min(1.0, max(fraction, 0.0))
    strata: dict[str, Stratum] = {}
    taken: list[SampledRecord] = []
    by_kind: dict[str, list[tuple[int, str, int | None]]] = defaultdict(list)
    for index, ((uri, size, _), kind) in enumerate(zip(versions, kinds, strict=True)):
        by_kind[kind].append((index, uri, size))
    if by_kind["jsonl"]:
        strata["jsonl"] = _chunks(by_kind["jsonl"], fraction, seed, taken)
    if by_kind["parquet"]:
        strata["parquet"] = _rows(by_kind["parquet"], fraction, seed, taken)
    if by_kind["through"]:
        strata["through"] = _through(by_kind["through"], fraction, seed, taken)
    taken.sort(key=lambda r: (r.file_index, r.position))
    return Sample(taken, strata, fraction, seed)


# --- plain JSONL: byte ranges ------------------------------------------------------------------

def chunk_size(total_bytes: int, fraction: float) -> int:
    """Chunks small enough that the sample holds UNITS_WANTED of them (a spread sample), but
    not so small that each read fetches a record or less."""
    wanted = total_bytes * fraction / UNITS_WANTED
    return int(min(CHUNK_MAX, max(CHUNK_MIN, wanted)))


def _chunks(files: list[tuple[int, str, int | None]], fraction: float, seed: int,
            taken: list[SampledRecord]) -> Stratum:
    total = sum(size or 0 for _, _, size in files)
    stratum = Stratum("jsonl", RATIO if fraction < 1 else EXACT, files=len(files), bytes=total,
                      records=0 if fraction >= 1 else None, fraction=fraction)
    size_of_chunk = chunk_size(total, fraction)
    every = [(index, uri, size, start) for index, uri, size in files
             for start in range(0, size or 0, size_of_chunk)]
    if fraction >= 1:
        chosen = every
    else:
        want = max(1, round(fraction * len(every)))
        chosen = sorted(random.Random(seed).sample(range(len(every)), min(want, len(every))))
        chosen = [every[i] for i in chosen]
        # what each chunk's share of the records stands for (the last of a file is shorter)
        stratum.fraction = sum(min(size_of_chunk, size - start)
                               for _, _, size, start in chosen) / max(1, total)
    by_file: dict[int, list] = defaultdict(list)
    for index, uri, size, start in chosen:
        by_file[index].append((uri, size, start))
    for index, starts in by_file.items():
        uri = starts[0][0]
        fs, path = raw_filesystem_for(uri)
        with fs.open_input_file(path) as handle:
            for _, size, start in starts:
                end = min(size, start + size_of_chunk)
                unit = f"{index}@{start}"
                lines = chunk_lines(handle, size, start, end)
                stratum.unit_bytes[unit] = end - start
                stratum.unit_records[unit] = len(lines)
                if stratum.how == EXACT:
                    stratum.records += len(lines)
                taken += [SampledRecord(index, offset, f"{_name(uri)}:{offset}", text, "jsonl", unit)
                          for offset, text in lines]
    return stratum


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

def _rows(files: list[tuple[int, str, int | None]], fraction: float, seed: int,
          taken: list[SampledRecord]) -> Stratum:
    stratum = Stratum("parquet", EXACT, files=len(files),
                      bytes=sum(size or 0 for _, _, size in files), records=0, fraction=fraction)
    rng = random.Random(seed)
    for index, uri, _ in files:
        fs, path = raw_filesystem_for(uri)
        with fs.open_input_file(path) as handle:
            reader = pq.ParquetFile(handle)
            rows = reader.metadata.num_rows
            stratum.records += rows
            chosen = sorted(rng.sample(range(rows), _share(rows, fraction, rng)))
            first = 0
            wanted = iter(chosen)
            row = next(wanted, None)
            for group in range(reader.metadata.num_row_groups):
                count = reader.metadata.row_group(group).num_rows
                if row is None:
                    break
                if row >= first + count:
                    first += count
                    continue
                table = reader.read_row_group(group).to_pylist()
                while row is not None and row < first + count:
                    position = row + 1  # as jobs.sources numbers rows
                    taken.append(SampledRecord(
                        index, position, f"{_name(uri)}:{position}",
                        json.dumps(table[row - first], default=_json_default),
                        "parquet", f"{index}#{position}"))
                    row = next(wanted, None)
                first += count
    return stratum


def _share(count: int, fraction: float, rng: random.Random) -> int:
    """How many of ``count`` items a ``fraction`` takes: the fraction's share, its remainder
    rounded at random (so that many small files are not each rounded to nothing)."""
    whole = count * fraction
    return min(count, int(whole) + (rng.random() < whole - int(whole)))


# --- compressed JSONL, https://: read through --------------------------------------------------

def _through(files: list[tuple[int, str, int | None]], fraction: float, seed: int,
             taken: list[SampledRecord]) -> Stratum:
    sized = all(size is not None for _, _, size in files)
    wanted = min(len(files), max(MIN_THROUGH_FILES, math.ceil(fraction * len(files))))
    some = sized and wanted < len(files)
    if some:
        ranked = sorted(files, key=lambda f: _chance(seed, "file", f[0]))
        read = sorted(ranked[:wanted])
    else:
        read = files
    rate = min(1.0, fraction * len(files) / len(read))
    stratum = Stratum("through", RATIO if some else EXACT, files=len(files),
                      bytes=sum(size or 0 for _, _, size in files),
                      records=None if some else 0, fraction=fraction)
    for index, uri, size in read:
        count = 0
        for where, text in iter_records(uri):
            count += 1
            position = int(where.rsplit(":", 1)[1])
            if _chance(seed, index, position) < rate:
                unit = f"{index}" if some else f"{index}#{position}"
                taken.append(SampledRecord(index, position, where, text, "through", unit))
        if some:
            stratum.unit_bytes[str(index)] = size or 0
            stratum.unit_records[str(index)] = count
        else:
            stratum.records += count
    return stratum


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
