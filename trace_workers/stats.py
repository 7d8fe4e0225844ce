"""Per-stage counters that travel in the stream as ``stats`` rows and are summed by the sink.

Each stage counts what it saw, kept and rejected (by reason); the manifest checks that
``kept + rejected == seen`` for every stage and that each stage saw what the one before kept.
Counters are kept per input block (:class:`BlockStats`): the same checks on one block's
counters tell whether that block is written whole, which is what a resumed run skips.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

STATS = "stats"  # the row kind of counters (trace_workers.stream names every kind)

# Every stage, in funnel order, with the unit it counts. A job runs a sub-sequence of them;
# a stage whose unit is the one before's must see exactly what that stage kept.
STAGES: dict[str, str] = {
    "read": "records",
    "dedup": "records",  # exact and near duplicates (jobs.screen.stage)
    "decontaminate": "records",  # benchmark items (jobs.screen.stage)
    "program_filter": "records",
    "pair_filter": "pairs",
    "trace": "pairs",
    "trace_filter": "pairs",
    "read_traces": "pairs",  # only when translating the traces of an earlier run
    # each kept trace becomes one item per task (--tasks: output, variable questions, ...)
    "make_tasks": "items",
    "translate": "items",
    "verify": "items",
    "read_translations": "items",  # only when building from an earlier run's translations
    "build": "items",
}
TRACE_STAGES = ("read", "dedup", "decontaminate", "program_filter", "pair_filter", "trace", "trace_filter")
TRANSLATE_STAGES = ("make_tasks", "translate", "verify", "build")


class StageStats:
    def __init__(self) -> None:
        self.seen: Counter = Counter()
        self.kept: Counter = Counter()
        self.rejected: dict[str, Counter] = defaultdict(Counter)
        self.details: dict[str, Counter] = defaultdict(Counter)  # e.g. missing module names
        self.timing: Counter = Counter()  # seconds summed over workers, e.g. sandbox time
        self.peaks: dict[str, float] = {}  # maxima over workers, e.g. peak RSS of an actor

    def see(self, stage: str, n: int = 1) -> None:
        self.seen[stage] += n

    def keep(self, stage: str, n: int = 1) -> None:
        self.kept[stage] += n

    def reject(self, stage: str, reason: str, n: int = 1) -> None:
        self.rejected[stage][reason] += n

    def note(self, what: str, key: str, n: int = 1) -> None:
        self.details[what][key] += n

    def time(self, what: str, seconds: float) -> None:
        self.timing[what] += seconds

    def peak(self, what: str, value: float) -> None:
        self.peaks[what] = max(self.peaks.get(what, value), value)

    def to_dict(self) -> dict:
        return {
            "seen": dict(self.seen), "kept": dict(self.kept),
            "rejected": {stage: dict(c) for stage, c in self.rejected.items()},
            "details": {what: dict(c) for what, c in self.details.items()},
            "timing": dict(self.timing), "peaks": dict(self.peaks),
        }

    def row(self) -> dict:
        return {"kind": STATS, "payload": json.dumps(self.to_dict())}

    def merge(self, data: dict) -> None:
        self.seen.update(data.get("seen", {}))
        self.kept.update(data.get("kept", {}))
        for stage, reasons in data.get("rejected", {}).items():
            self.rejected[stage].update(reasons)
        for what, keys in data.get("details", {}).items():
            self.details[what].update(keys)
        self.timing.update(data.get("timing", {}))
        for what, value in data.get("peaks", {}).items():
            self.peak(what, value)

    def funnel(self, stages: tuple[str, ...] = TRACE_STAGES) -> dict[str, dict]:
        """Counts per stage of a job, in order, with the two accounting checks per stage."""
        out = {}
        previous_kept, previous_unit = None, None
        for stage in stages:
            unit = STAGES[stage]
            rejected = dict(self.rejected.get(stage, {}))
            seen, kept = self.seen.get(stage, 0), self.kept.get(stage, 0)
            out[stage] = {
                "unit": unit, "seen": seen, "kept": kept,
                "rejected": sum(rejected.values()), "reasons": dict(sorted(rejected.items())),
                "balanced": kept + sum(rejected.values()) == seen,
            }
            if previous_kept is not None and unit == previous_unit:
                out[stage]["follows_previous"] = seen == previous_kept
            previous_kept, previous_unit = kept, unit
        return out


# peaks[BLOCK_RECORDS]: how many records the input block holds, noted by the stage that reads it
BLOCK_RECORDS = "block_records"


class BlockStats:
    """One batch's counters per input block, and the run-level ones (timings, peaks)."""

    def __init__(self) -> None:
        self.blocks: dict[str | None, StageStats] = {}
        self.run = StageStats()

    def of(self, block: str | None) -> StageStats:
        if block is None:
            return self.run
        stats = self.blocks.get(block)
        if stats is None:
            stats = self.blocks[block] = StageStats()
        return stats

    def rows(self) -> list[dict]:
        """``stats`` rows: one per block, and one without a block for the run-level counters."""
        out = [{**stats.row(), "block": block} for block, stats in self.blocks.items()]
        return out + [{**self.run.row(), "block": None}]


# output written -> the stage whose kept rows it must equal
WRITTEN_FROM = {"traces": "trace_filter", "translations": "verify", "training": "build"}


def accounting_checks(funnel: dict[str, dict], written: dict[str, int],
                      details: dict | None = None) -> dict[str, bool]:
    """Every stage balanced and fed by the one before, every kept or rejected row written.
    The same checks on one input block's counters tell a resumed run that it is whole."""
    rejected_total = sum(stage["rejected"] for stage in funnel.values())
    checks = {
        "every_stage_balanced": all(stage["balanced"] for stage in funnel.values()),
        "every_stage_follows_previous": all(stage.get("follows_previous", True)
                                            for stage in funnel.values()),
        "rejects_written_equal_rejected": written.get("rejects", 0) == rejected_total,
    }
    for label, stage in WRITTEN_FROM.items():
        if label in written and stage in funnel:
            checks[f"{label}_written_equal_kept"] = written[label] == funnel[stage]["kept"]
    if "rewrites" in written:  # one new program per rewrite the sandbox kept
        kept = (details or {}).get("rewrites", {}).get("kept", 0)
        checks["rewrites_written_equal_kept"] = written["rewrites"] == kept
    return checks
