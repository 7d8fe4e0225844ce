"""Reading PyEdu shards, local or remote, as a stream of small blocks (without Ray: the
Ray Data source over these functions is :mod:`jobs.datasource`).

Small files share a read task (grouped by bytes, :func:`group_files`), a large one has its
own; a task yields a block every ``programs_per_block`` records of each of its files, so a
single large shard still feeds many trace actors at once and memory stays flat, and a corpus
of thousands of small objects costs a few tasks, not one each. Each file's size and time come
from the listing that found it (one call per prefix on S3/GCS), not a look-up per file. JSONL (plain,
.gz, .zst, .bz2, .xz) is read with smart-open; Parquet with pyarrow, each row turned back into
the JSON record it stands for, so that both formats take the same parsing path.

Blocks are named by file and position (:func:`block_key`), the same in every run over the same
inputs: a resumed run is given the blocks already written whole and reads past them.
"""

from __future__ import annotations

import codecs
import datetime
import decimal
import gzip
import json
import lzma
import os
import posixpath
import re
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import zstandard
from fsspec.utils import glob_translate

from jobs.retry import RetryClock, is_transient
from jobs.storage import REMOTE_SCHEMES, filesystem_for, raw_filesystem_for
from trace_workers.records import READ_ERROR

try:  # smart-open reads .zst with compression.zstd (backports.zstd before Python 3.14)
    from backports.zstd import ZstdError as _ZSTD_ERROR
except ImportError:  # pragma: no cover - Python 3.14 has compression.zstd
    try:
        from compression.zstd import ZstdError as _ZSTD_ERROR
    except ImportError:
        _ZSTD_ERROR = None

# where: "file:line"; block: the input block's key (see block_key); block_size: its records
LINE_SCHEMA = pa.schema([("where", pa.string()), ("record", pa.string()), ("block", pa.string()),
                         ("block_size", pa.int32())])
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSION_SUFFIXES = ("", ".gz", ".zst", ".bz2", ".xz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def is_input_file(name: str) -> bool:
    name = name.lower()
    return name.endswith(PARQUET_SUFFIXES) or any(
        name.endswith(s + c) for s in JSONL_SUFFIXES for c in COMPRESSION_SUFFIXES
    )


def _uri(uri: str, path: str) -> str:
    if uri.startswith(REMOTE_SCHEMES):
        return uri.split("://", 1)[0] + "://" + path
    return path


# [size, modification time] of each input file as its listing gave them (one listing call
# covers a whole prefix on S3/GCS): input_versions and the read tasks' grouping use them
# instead of a look-up per file. Refreshed by every list_inputs (a job lists its inputs first).
_LISTED: dict[str, list] = {}
LOOKUP_THREADS = 32  # concurrent look-ups of the files a listing did not describe


def list_inputs(uri: str) -> list[str]:
    """The input files a user's path, folder or glob names, sorted, as URIs."""
    if uri.startswith(("http://", "https://")):
        return [uri]
    fs, path = filesystem_for(uri)
    if any(ch in path for ch in "*?["):
        # as the shell and fsspec read a glob: `*` and `?` stay in one folder, `**` crosses them
        base = path[: min(path.index(ch) for ch in "*?[" if ch in path)].rsplit("/", 1)[0] or "/"
        infos = fs.get_file_info(pafs.FileSelector(base, recursive="**" in path))
        pattern = re.compile(glob_translate(path))
        found = [i for i in infos if i.type == pafs.FileType.File and pattern.match(i.path)]
    else:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"input not found: {uri}")
        if info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            found = [i for i in infos
                     if i.type == pafs.FileType.File and is_input_file(posixpath.basename(i.path))]
        else:
            found = [info]
    if not found:
        raise FileNotFoundError(f"no JSONL or Parquet files under {uri}")
    found.sort(key=lambda info: info.path)
    for info in found:
        _LISTED[_uri(uri, info.path)] = _version(info)
    return [_uri(uri, info.path) for info in found]


def _version(info: pafs.FileInfo) -> list:
    return [info.size, info.mtime_ns if info.mtime_ns is not None else None]


def input_versions(files: list[str]) -> list[list]:
    """[uri, size, modification time] of each input file: what tells a resumed run that an
    input was rewritten since the attempt it goes on with (object stores give their
    LastModified; an https:// input has none). From the listing where it described the file,
    else looked up, many at once."""
    def look_up(uri: str) -> list:
        if uri.startswith(("http://", "https://")):
            return [None, None]
        fs, path = filesystem_for(uri)
        return _version(fs.get_file_info(path))

    found = {uri: _LISTED[uri] for uri in files if uri in _LISTED}
    unknown = [uri for uri in files if uri not in found]
    if unknown:
        with ThreadPoolExecutor(min(LOOKUP_THREADS, len(unknown))) as pool:
            found.update(zip(unknown, pool.map(look_up, unknown), strict=True))
    return [[uri, *found[uri]] for uri in files]


def json_default(value: Any) -> Any:
    """A Parquet value that JSON has no type for: columns beside a record's own (a date, a
    price) are common in real datasets and must not stop the read."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (datetime.date, datetime.time)):  # datetimes too
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


def iter_records(uri: str, retry_s: float | None = None) -> Iterator[tuple[str, str]]:
    """(where, record JSON text) for every record of one file; blank lines are not records.
    A file whose content breaks off (a truncated .gz, a corrupt Parquet file) ends with one
    more record that stands for the rest of it: the read stage rejects it as damaged_file.
    A file that cannot be reached for a while (a reset connection, 503 SlowDown) is opened
    again and read on after the last record given, until ``retry_s`` passes without progress;
    then the read fails (the job stops, and the same command resumes), never a reject."""
    name = posixpath.basename(uri.split("?", 1)[0])
    given = 0  # lines or rows read so far: where a reopened read goes on
    failing = RetryClock(retry_s)
    while True:
        try:
            for position, where, text in _read_file(uri, name, skip=given):
                given = position
                failing.reset()
                if where:
                    yield where, text
            return
        except Exception as exc:
            if _damaged(exc):
                detail = f"{type(exc).__name__}: {exc} (after record {given}; the rest is lost)"
                yield f"{name}:{given + 1}", json.dumps({READ_ERROR: detail})
                return
            if not is_transient(exc):
                raise
            failing.wait_or_raise(exc, f"read {uri}")


def _read_file(uri: str, name: str, skip: int) -> Iterator[tuple[int, str, str]]:
    """(position, where, text) of the records after the first ``skip`` (lines or rows)."""
    position = 0
    if name.lower().endswith(PARQUET_SUFFIXES):
        fs, path = raw_filesystem_for(uri)
        with fs.open_input_file(path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=256):
                if position + batch.num_rows <= skip:
                    position += batch.num_rows
                    continue
                for row in batch.to_pylist():
                    position += 1
                    if position > skip:
                        yield position, f"{name}:{position}", json.dumps(row, default=json_default)
        return
    import smart_open  # here: what samples plain files without it (jobs.plan.sample) starts faster

    with smart_open.open(uri, "rb", transport_params=_transport(uri)) as handle:
        for position, raw in enumerate(handle, 1):
            if position <= skip:
                continue
            if position == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)  # as Windows tools write UTF-8
            if raw.strip():
                yield position, f"{name}:{position}", raw.decode("utf-8", "replace")
            else:
                yield position, "", ""


def _transport(uri: str) -> dict:
    """smart-open's transport for ``uri``: on S3 one client per process, shared by every file
    (a client of its own costs each small object about 20 ms more than its GET)."""
    if not uri.startswith("s3://"):
        return {}
    return {"client": _s3_client(os.environ.get("AWS_ENDPOINT_URL"),
                                 os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_PROFILE"))}


@lru_cache(maxsize=4)
def _s3_client(endpoint: str | None, key: str | None, profile: str | None) -> Any:
    """A boto3 S3 client from the standard environment (keyed by what would change it)."""
    import boto3

    return boto3.client("s3")


def _damaged(exc: Exception) -> bool:
    """Is ``exc`` the file's content failing to decode (which no retry changes), rather than
    the file failing to be reached (whose records are not lost, only not read yet)?"""
    if isinstance(exc, (EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError,
                        pa.ArrowInvalid, gzip.BadGzipFile, UnicodeDecodeError)):
        return True
    if _ZSTD_ERROR is not None and isinstance(exc, _ZSTD_ERROR):
        return True
    # bz2 says "Invalid data stream" with a plain OSError
    return type(exc) is OSError and exc.errno is None and "Invalid data stream" in str(exc)


def block_key(file_index: int, block_index: int) -> str:
    return f"{file_index:05d}:{block_index:07d}"


MIN_TASK_BYTES = 256 << 10  # small files share a read task up to about this many bytes...
MAX_TASK_BYTES = 64 << 20  # ...or, with fewer tasks than Ray's parallelism, up to this
PREFETCH_FILES = 8  # small files a read task fetches at once


def group_files(sizes: list[int | None], parallelism: int) -> list[list[int]]:
    """Consecutive input files grouped into read tasks by bytes, as Ray Data's file readers
    group small files: a task takes files until it holds its share of the input (the total
    over ``parallelism``, between MIN_TASK_BYTES and MAX_TASK_BYTES); a large file (or one
    of unknown size) is a task of its own, its records still cut into blocks. Blocks stay
    keyed by file and position, so a grouping that differs between attempts changes nothing
    a resumed run skips."""
    known = [size for size in sizes if size is not None]
    share = sum(known) / max(1, parallelism)
    target = min(MAX_TASK_BYTES, max(MIN_TASK_BYTES, share))
    groups: list[list[int]] = []
    held = 0.0
    for index, size in enumerate(sizes):
        if size is None or size >= target:
            groups.append([index])
            held = float("inf")  # the next file starts a task of its own
            continue
        if not groups or held + size > target:
            groups.append([])
            held = 0.0
        groups[-1].append(index)
        held += size
    return groups


def records_of(uri: str) -> list[tuple[str, str]]:
    """Every record of one (small) file, read whole: what a thread fetches ahead."""
    return list(iter_records(uri))


def file_blocks(file_index: int, read: Iterator[tuple[str, str]], per_block: int,
                skip: frozenset[str]) -> Iterator[pa.Table]:
    """The blocks of the records one input file ``read`` gives (iter_records), keyed by the
    file's index and their position in it; those in ``skip`` are read past."""

    def table(block_index: int, wheres: list[str], records: list[str]) -> pa.Table | None:
        key = block_key(file_index, block_index)
        if key in skip:
            return None
        n = len(records)
        return pa.table([wheres, records, [key] * n, [n] * n], schema=LINE_SCHEMA)

    wheres, records, block_index = [], [], 0
    for where, record in read:
        wheres.append(where)
        records.append(record)
        if len(records) >= per_block:
            if (block := table(block_index, wheres, records)) is not None:
                yield block
            wheres, records, block_index = [], [], block_index + 1
    if records and (block := table(block_index, wheres, records)) is not None:
        yield block
