"""Retrying what object storage refuses for a while: resets, 503 SlowDown, stalls.

An object store that drops every connection for twenty seconds, or answers 503 SlowDown under
load, is ordinary on a long run; pyarrow's own retries give up after about six seconds, and Ray
Data does not retry a custom sink. Every read, write, list and ledger operation of a job goes
through :func:`retrying`: exponential backoff with full jitter, until a budget
(``--storage-retry-s``) is spent; only then does the job fail, with one line, and an output that
the same command resumes. Errors that waiting cannot cure (a missing file, access denied, a
bucket that does not exist) are raised at once.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
DEFAULT_BUDGET_S = 180.0
# the job's --storage-retry-s, set by the driver for itself and its Ray workers (runtime_env)
BUDGET_ENV = "GROUNDTRACE_STORAGE_RETRY_S"
FIRST_WAIT_S = 0.5
LONGEST_WAIT_S = 15.0
# what an error's text says when asking again cannot help (pyarrow's S3 error names, HTTP)
PERMANENT_MARKERS = ("ACCESS_DENIED", "NO_SUCH_BUCKET", "NO_SUCH_KEY", "INVALID_ACCESS_KEY",
                     "SIGNATURE_DOES_NOT_MATCH", "AccessDenied", "NoSuchBucket", "NoSuchKey",
                     "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden",
                     "Path does not exist", "is a directory", "Not a directory")
PERMANENT_TYPES = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
                   FileExistsError)


class StorageUnavailable(OSError):
    """Object storage kept failing for longer than the retry budget."""


def is_transient(exc: BaseException) -> bool:
    """An error that may pass if asked again: a network or server error of a filesystem or an
    HTTP client, not a missing file, a refused credential or a bug."""
    if isinstance(exc, StorageUnavailable) or isinstance(exc, PERMANENT_TYPES):
        return False
    text = str(exc)
    if any(marker in text for marker in PERMANENT_MARKERS):
        return False
    if isinstance(exc, (OSError, TimeoutError, ConnectionError, EOFError)):
        return True
    # botocore's and urllib3's network errors (smart-open's reads) are not OSErrors
    module = type(exc).__module__ or ""
    return module.startswith(("botocore", "urllib3", "http.client"))


def default_budget() -> float:
    try:
        return float(os.environ.get(BUDGET_ENV, DEFAULT_BUDGET_S))
    except ValueError:
        return DEFAULT_BUDGET_S


class RetryClock:
    """The backoff of one operation that keeps failing: waits with full jitter, doubling up to
    LONGEST_WAIT_S, and raises StorageUnavailable once ``budget_s`` has passed since the first
    failure (``reset`` when the operation makes progress again)."""

    def __init__(self, budget_s: float | None = None):
        self.budget = default_budget() if budget_s is None else budget_s
        self.reset()

    def reset(self) -> None:
        self.started: float | None = None
        self.attempt = 0

    def wait_or_raise(self, exc: BaseException, what: str) -> None:
        now = time.monotonic()
        self.started = self.started if self.started is not None else now
        waited = now - self.started
        if waited >= self.budget:
            raise StorageUnavailable(
                f"{what}: {type(exc).__name__}: {str(exc)[:300]} (still failing after "
                f"{waited:.0f} s of retries; --storage-retry-s is {self.budget:.0f})") from exc
        pause = random.uniform(0, min(LONGEST_WAIT_S, FIRST_WAIT_S * 2 ** self.attempt))
        time.sleep(min(pause, max(0.0, self.budget - waited)))
        self.attempt += 1


def retrying(operation: Callable[[], T], what: str, budget_s: float | None = None) -> T:
    """``operation()``, asked again after transient errors until ``budget_s`` is spent."""
    clock = RetryClock(budget_s)
    while True:
        try:
            return operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            clock.wait_or_raise(exc, what)
