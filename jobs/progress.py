"""A progress line every few seconds while a job runs, from what it has committed.

Ray Data draws its own bars per operator; this adds one line in the job's terms, the funnel so
far, read from the ledger entries the sink has committed (so it also counts what an earlier
attempt kept), on a daemon thread of the driver. Cheap on object storage too: one listing and
the new entries per line.
"""

from __future__ import annotations

import sys
import threading
import time

from jobs.ledger import Ledger
from trace_workers.stats import StageStats
from translate.bill import attempts_bill, bill_line


def progress_line(stats: StageStats, stages: tuple[str, ...], elapsed_s: float) -> str:
    """``progress 1m30s: read 60 records | trace 57/530 pairs | ...`` (kept/seen so far)."""
    funnel = stats.funnel(stages)
    parts = []
    for stage, c in funnel.items():
        parts.append(f"{stage} {c['kept']}/{c['seen']}")
    answers = stats.details.get("answers", {})
    if answers.get("no_thinking") and not answers.get("thinking"):
        parts.append(f"none of the {answers['no_thinking']} answers so far thinks: each is checked "
                     "whole (--no-enable-thinking for a model that does not think)")
    bill = bill_line(attempts_bill(stats.details, funnel.get("verify", {}).get("kept", 0)))
    if bill:
        parts.append(bill)
    minutes, seconds = divmod(int(elapsed_s), 60)
    return f"progress {minutes}m{seconds:02d}s (kept/seen, committed): " + " | ".join(parts)


class ProgressReporter:
    def __init__(self, ledger: Ledger, stages: tuple[str, ...], every_s: float, out=None,
                 waiting=None):
        self.ledger, self.stages, self.every_s = ledger, stages, every_s
        self.waiting = waiting  # () -> what the job waits for (GPUs on a cluster), or None
        self.out = out or sys.stdout
        self.stats = StageStats()
        self.known: set[str] = set()
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="groundtrace-progress", daemon=True)

    def __enter__(self) -> ProgressReporter:
        if self.every_s > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def poll(self) -> str:
        """Read the entries committed since the last poll; the line to print."""
        for entry in self.ledger.entries(self.known):
            self.known.add(entry.name)
            for data in entry.stats.values():
                self.stats.merge(data)
        return progress_line(self.stats, self.stages, time.monotonic() - self.started)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                line = self.poll()
            except Exception as exc:  # progress is a courtesy: it never stops the job
                line = f"progress: cannot read the ledger ({type(exc).__name__}: {exc})"
            print(line, file=self.out, flush=True)
            try:
                wait = self.waiting() if self.waiting is not None else None
            except Exception:  # noqa: BLE001 - a courtesy too
                wait = None
            if wait:
                print(f"progress: {wait}", file=self.out, flush=True)
