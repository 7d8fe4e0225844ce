"""The input as a Ray Data source: read tasks over :mod:`jobs.sources`' functions (kept
apart, so that what reads files without Ray, ``groundtrace plan``, does not import Ray Data)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from jobs.sources import (
    LINE_SCHEMA,
    PREFETCH_FILES,
    file_blocks,
    group_files,
    input_versions,
    iter_records,
    records_of,
)


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
        sizes = [size for _, size, _ in input_versions(self.files)]
        return [self._task(group) for group in group_files(sizes, parallelism)]

    def _task(self, group: list[int]) -> ReadTask:
        # what the task carries: its own files and the skipped blocks among them, not the
        # whole input's (a task is pickled to its worker)
        files = [(index, self.files[index]) for index in group]
        mine = {f"{index:05d}:" for index in group}
        skip = frozenset(key for key in self.skip if key[:key.index(":") + 1] in mine)
        per_block = self.programs_per_block

        def read() -> Iterator[pa.Table]:
            if len(files) == 1:
                yield from file_blocks(files[0][0], iter_records(files[0][1]), per_block, skip)
                return
            # small files: fetched a few at once (an object store answers each GET after a
            # round trip), handed on in order
            with ThreadPoolExecutor(PREFETCH_FILES) as pool:
                queue = deque((index, pool.submit(records_of, uri))
                              for index, uri in files[:PREFETCH_FILES])
                following = iter(files[PREFETCH_FILES:])
                while queue:
                    file_index, fetched = queue.popleft()
                    if (more := next(following, None)) is not None:
                        queue.append((more[0], pool.submit(records_of, more[1])))
                    yield from file_blocks(file_index, iter(fetched.result()), per_block, skip)

        metadata = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None,
                                 input_files=[uri for _, uri in files])
        return ReadTask(read, metadata, schema=LINE_SCHEMA)
