"""Reading PyEdu shards, local or remote, as a stream of small blocks.

One read task per file; each task yields a block every ``programs_per_block`` records, so a
single large shard still feeds many trace actors at once and memory stays flat. JSONL (plain,
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
import posixpath
import re
import zlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import smart_open
import zstandard
from fsspec.utils import glob_translate
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

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
        found = [i.path for i in infos if i.type == pafs.FileType.File and pattern.match(i.path)]
    else:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"input not found: {uri}")
        if info.type == pafs.FileType.Directory:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            found = [i.path for i in infos
                     if i.type == pafs.FileType.File and is_input_file(posixpath.basename(i.path))]
        else:
            found = [path]
    if not found:
        raise FileNotFoundError(f"no JSONL or Parquet files under {uri}")
    return [_uri(uri, p) for p in sorted(found)]


def input_versions(files: list[str]) -> list[list]:
    """[uri, size, modification time] of each input file: what tells a resumed run that an
    input was rewritten since the attempt it goes on with (object stores give their
    LastModified; an https:// input has none)."""
    out = []
    for uri in files:
        if uri.startswith(("http://", "https://")):
            out.append([uri, None, None])
            continue
        fs, path = filesystem_for(uri)
        info = fs.get_file_info(path)
        mtime = info.mtime_ns if info.mtime_ns is not None else None
        out.append([uri, info.size, mtime])
    return out


def _json_default(value: Any) -> Any:
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
                        yield position, f"{name}:{position}", json.dumps(row, default=_json_default)
        return
    with smart_open.open(uri, "rb") as handle:
        for position, raw in enumerate(handle, 1):
            if position <= skip:
                continue
            if position == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)  # as Windows tools write UTF-8
            if raw.strip():
                yield position, f"{name}:{position}", raw.decode("utf-8", "replace")
            else:
                yield position, "", ""


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


class PyEduSource(Datasource):
    def __init__(self, files: list[str], programs_per_block: int = 16,
                 skip: frozenset[str] = frozenset()):
        super().__init__()
        self.files = files
        self.programs_per_block = programs_per_block
        self.skip = skip  # block keys to read past (written whole by an earlier attempt)

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        return [self._task(index, uri) for index, uri in enumerate(self.files)]

    def _task(self, file_index: int, uri: str) -> ReadTask:
        per_block, skip = self.programs_per_block, self.skip

        def table(block_index: int, wheres: list[str], records: list[str]) -> pa.Table | None:
            key = block_key(file_index, block_index)
            if key in skip:
                return None
            n = len(records)
            return pa.table([wheres, records, [key] * n, [n] * n], schema=LINE_SCHEMA)

        def read() -> Iterator[pa.Table]:
            wheres, records, block_index = [], [], 0
            for where, record in iter_records(uri):
                wheres.append(where)
                records.append(record)
                if len(records) >= per_block:
                    if (block := table(block_index, wheres, records)) is not None:
                        yield block
                    wheres, records, block_index = [], [], block_index + 1
            if records and (block := table(block_index, wheres, records)) is not None:
                yield block

        metadata = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=[uri])
        return ReadTask(read, metadata, schema=LINE_SCHEMA)
