"""PyEdu raw records: parsing, stable ids, and the rows that flow between stages.

The stream between stages is a tagged union: every row is ``{"kind": ..., "payload": <JSON>}``
with kind ``program`` (work for the trace actors), ``trace`` (a kept run), ``reject`` (a row
that left, with its stage and reason) or ``stats`` (per-batch counters, summed by the sink).
One stable two-column schema lets rejects and counters travel with the work through Ray Data,
so nothing needs a side channel and nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

STREAM_SCHEMA = pa.schema([("kind", pa.string()), ("payload", pa.string())])
REQUIRED_FIELDS = ("refcode", "funcname", "ios")


@dataclass
class Pair:
    index: int  # position in the record's ``ios``: part of the run id, stable across runs
    input: Any
    output: Any


@dataclass
class Program:
    problem_id: str
    problem_description: str
    io_requirements: str
    refcode: str
    funcname: str
    pairs: list[Pair]
    source: str | None = None
    category: str | None = None


@dataclass
class Reject:
    id: str
    problem_id: str
    stage: str
    reason: str
    detail: str = ""

    def row(self) -> dict:
        return {"kind": "reject", "payload": json.dumps(asdict(self), ensure_ascii=False)}


@dataclass
class Run:
    """One program call: the unit the trace actors work on."""

    id: str
    input: str  # JSON text of the keyword arguments
    expected_output: str  # JSON text


@dataclass
class ProgramWork:
    """A program with the runs chosen for it, in the order the actor should try them."""

    problem_id: str
    problem_description: str
    io_requirements: str
    refcode: str
    funcname: str
    depth: int
    heavy: bool  # imports a library that only the heavy zygote preloads
    runs: list[Run] = field(default_factory=list)

    def row(self) -> dict:
        return {"kind": "program", "payload": json.dumps(asdict(self), ensure_ascii=False)}

    @classmethod
    def from_payload(cls, payload: str) -> ProgramWork:
        data = json.loads(payload)
        data["runs"] = [Run(**run) for run in data["runs"]]
        return cls(**data)


def problem_id_for(record: dict) -> str:
    """Content-addressed id: the same program gets the same id wherever it is read from."""
    digest = hashlib.sha256()
    for key in ("funcname", "refcode", "problem_description"):
        digest.update(str(record.get(key) or "").encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def run_id(problem_id: str, pair_index: int) -> str:
    return f"{problem_id}-{pair_index}"


def parse_record(text: str, where: str) -> Program | Reject:
    """One JSONL line (or one Parquet row as JSON) to a Program, or a read-stage Reject."""
    try:
        record = json.loads(text)
    except ValueError as exc:
        return Reject(where, "", "read", "invalid_json", str(exc)[:300])
    if not isinstance(record, dict):
        return Reject(where, "", "read", "not_an_object", type(record).__name__)
    missing = [key for key in REQUIRED_FIELDS if key not in record]
    if missing:
        return Reject(where, "", "read", "missing_field", ", ".join(missing))
    ios = record["ios"]
    if isinstance(ios, str):  # Parquet writers often keep nested JSON as text
        try:
            ios = json.loads(ios)
        except ValueError:
            ios = None
    if ios is not None and not isinstance(ios, list):
        return Reject(where, "", "read", "bad_ios", f"ios is {type(ios).__name__}, not a list")
    if not isinstance(record["refcode"], str) or not isinstance(record["funcname"], str):
        return Reject(where, "", "read", "bad_field", "refcode and funcname must be strings")
    problem_id = problem_id_for(record)
    pairs = []
    for index, io in enumerate(ios or []):
        if isinstance(io, dict) and "input" in io and "output" in io:
            pairs.append(Pair(index, io["input"], io["output"]))
        else:
            pairs.append(Pair(index, _INVALID, io))
    return Program(
        problem_id=problem_id,
        problem_description=str(record.get("problem_description") or ""),
        io_requirements=str(record.get("io_requirements") or ""),
        refcode=record["refcode"],
        funcname=record["funcname"],
        pairs=pairs,
        source=record.get("source"),
        category=record.get("category"),
    )


class _Invalid:
    """Marks a pair that is not ``{"input": ..., "output": ...}``."""

    def __repr__(self) -> str:
        return "<invalid pair>"


_INVALID = _Invalid()


def is_invalid(value: Any) -> bool:
    return value is _INVALID
