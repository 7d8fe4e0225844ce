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
import fnmatch
import json
import lzma
import posixpath
import zlib
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import smart_open
import zstandard
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from trace_workers.records import READ_ERROR

# where: "file:line"; block: the input block's key (see block_key); block_size: its records
LINE_SCHEMA = pa.schema([("where", pa.string()), ("record", pa.string()), ("block", pa.string()),
                         ("block_size", pa.int32())])
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
COMPRESSION_SUFFIXES = ("", ".gz", ".zst", ".bz2", ".xz")
PARQUET_SUFFIXES = (".parquet", ".pq")
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://")


def is_input_file(name: str) -> bool:
    name = name.lower()
    return name.endswith(PARQUET_SUFFIXES) or any(
        name.endswith(s + c) for s in JSONL_SUFFIXES for c in COMPRESSION_SUFFIXES
    )


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow filesystem and path for a local path or an s3:// gs:// URI (standard env creds)."""
    if uri.startswith(REMOTE_SCHEMES):
        return pafs.FileSystem.from_uri(uri.replace("gcs://", "gs://", 1))
    return pafs.LocalFileSystem(), posixpath.abspath(uri)


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
        base = path[: min(path.index(ch) for ch in "*?[" if ch in path)].rsplit("/", 1)[0] or "/"
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
        found = [i.path for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatch(i.path, path)]
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


def iter_records(uri: str) -> Iterator[tuple[str, str]]:
    """(where, record JSON text) for every record of one file; blank lines are not records.
    A file whose content breaks off (a truncated .gz, a corrupt Parquet file) ends with one
    more record that stands for the rest of it: the read stage rejects it as damaged_file."""
    name = posixpath.basename(uri.split("?", 1)[0])
    position = 0  # the line or row read last
    try:
        if name.lower().endswith(PARQUET_SUFFIXES):
            fs, path = filesystem_for(uri)
            with fs.open_input_file(path) as handle:
                for batch in pq.ParquetFile(handle).iter_batches(batch_size=256):
                    for row in batch.to_pylist():
                        position += 1
                        yield f"{name}:{position}", json.dumps(row, default=_json_default)
            return
        with smart_open.open(uri, "rb") as handle:
            for position, raw in enumerate(handle, 1):
                if position == 1:
                    raw = raw.removeprefix(codecs.BOM_UTF8)  # as Windows tools write UTF-8
                if raw.strip():
                    yield f"{name}:{position}", raw.decode("utf-8", "replace")
    except Exception as exc:
        if not _damaged(exc):
            raise
        detail = f"{type(exc).__name__}: {exc} (after record {position}; the rest is lost)"
        yield f"{name}:{position + 1}", json.dumps({READ_ERROR: detail})


def _damaged(exc: Exception) -> bool:
    """Is ``exc`` the file's content failing to decode, rather than the file failing to be
    reached (which stops the job: its records are not lost, only not read yet)?"""
    if isinstance(exc, OSError):  # gzip's BadGzipFile, bz2's invalid stream: no errno
        return exc.errno is None and not isinstance(exc, ConnectionError)
    return isinstance(exc, (EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError,
                            pa.ArrowInvalid))


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
