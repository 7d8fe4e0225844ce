"""Where a job's files live: a local folder or object storage (s3://, gs://), reached through
pyarrow's filesystems, every operation retried through transient errors (jobs.retry), and
written so that each file is whole or absent (:class:`ShardWriter`)."""

from __future__ import annotations

import posixpath
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.retry import retrying

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://")


def raw_filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow filesystem and path for a local path or an s3:// gs:// URI (standard env
    creds), without retries (the reader of input files retries from where it stopped)."""
    if uri.startswith(REMOTE_SCHEMES):
        return pafs.FileSystem.from_uri(uri.replace("gcs://", "gs://", 1))
    return pafs.LocalFileSystem(), posixpath.abspath(uri)


def filesystem_for(uri: str, retry_s: float | None = None) -> tuple[pafs.FileSystem, str]:
    """Like :func:`raw_filesystem_for`, each operation retried for up to ``retry_s``
    (default: jobs.retry.DEFAULT_BUDGET_S). Files opened for reading are read whole inside
    the retry: the ledger, the manifest, shards, the screen's decisions."""
    fs, path = raw_filesystem_for(uri)
    return pafs.PyFileSystem(RetryingHandler(fs, retry_s)), path


class RetryingHandler(pafs.FileSystemHandler):
    def __init__(self, inner: pafs.FileSystem, retry_s: float | None = None):
        self.inner, self.retry_s = inner, retry_s

    def _do(self, what: str, path: str, operation):
        return retrying(operation, f"{what} {path}", self.retry_s)

    def __eq__(self, other) -> bool:
        return isinstance(other, RetryingHandler) and self.inner.equals(other.inner)

    def __ne__(self, other) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return f"retrying-{self.inner.type_name}"

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self._do("look up", ", ".join(paths)[:200], lambda: self.inner.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self._do("list", selector.base_dir, lambda: self.inner.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self._do("create", path, lambda: self.inner.create_dir(path, recursive=recursive))

    def delete_dir(self, path: str) -> None:
        self._do("delete", path, lambda: self.inner.delete_dir(path))

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._do("delete", path, lambda: self.inner.delete_dir_contents(
            path, missing_dir_ok=missing_dir_ok))

    def delete_root_dir_contents(self) -> None:
        raise OSError("groundtrace never empties a whole filesystem")

    def delete_file(self, path: str) -> None:
        self._do("delete", path, lambda: self.inner.delete_file(path))

    def move(self, src: str, dest: str) -> None:
        self._do("move", src, lambda: self.inner.move(src, dest))

    def copy_file(self, src: str, dest: str) -> None:
        self._do("copy", src, lambda: self.inner.copy_file(src, dest))

    def _whole(self, path: str) -> pa.BufferReader:
        def read() -> pa.BufferReader:
            with self.inner.open_input_file(path) as handle:
                return pa.BufferReader(handle.read_buffer())
        return self._do("read", path, read)

    def open_input_stream(self, path: str) -> pa.NativeFile:
        return self._whole(path)

    def open_input_file(self, path: str) -> pa.NativeFile:
        return self._whole(path)

    def open_output_stream(self, path: str, metadata=None) -> pa.NativeFile:
        return self.inner.open_output_stream(path, metadata=metadata)  # ShardWriter retries

    def open_append_stream(self, path: str, metadata=None) -> pa.NativeFile:
        raise OSError("groundtrace writes each file whole, never appends")


class ShardWriter:
    """Writes one file of the output folder so that it is either absent or whole."""

    def __init__(self, output: str, retry_s: float | None = None):
        self.fs, self.root = filesystem_for(output, retry_s)
        self.raw, _ = raw_filesystem_for(output)
        self.retry_s = retry_s
        self.remote = output.startswith(REMOTE_SCHEMES)

    def ensure_dir(self, sub: str) -> None:
        self.fs.create_dir(posixpath.join(self.root, sub), recursive=True)

    def publish(self, rel: str, data: bytes) -> str:
        """Write ``data`` so that ``rel`` appears whole or not at all: one PUT on object
        storage, a temporary name and a rename on a local disk; asked again through
        transient errors (a PUT of the same bytes twice is the same object). The bytes are
        made in memory first: an exception that passes through a half-written stream (a
        worker stopped by SIGTERM, a spot shutdown) would otherwise close it, and on object
        storage closing is what publishes the object."""
        final = posixpath.join(self.root, rel)

        def put() -> None:
            target = final if self.remote else posixpath.join(
                posixpath.dirname(final), f".{posixpath.basename(final)}.{uuid.uuid4().hex}.tmp")
            out = self.raw.open_output_stream(target)
            out.write(data)  # one call: the whole object is in the stream before it closes
            out.close()
            if not self.remote:
                self.raw.move(target, final)

        retrying(put, f"write {final}", self.retry_s)
        return final

    def write(self, rel: str, table: pa.Table) -> str:
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer, compression="zstd")
        return self.publish(rel, buffer.getvalue().to_pybytes())

    def write_text(self, rel: str, text: str) -> str:
        return self.publish(rel, text.encode())
