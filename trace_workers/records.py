"""PyEdu raw records: parsing, stable ids, and the work units of the trace stage (the rows
they travel in are :mod:`trace_workers.stream`'s)."""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from trace_workers.stats import BLOCK_RECORDS, BlockStats
from trace_workers.stream import PROGRAM, Reject, row


def input_lines(batch: pa.Table) -> list[tuple[str, str, str | None]]:
    """(where, record text, block) of every line of a read batch (jobs.sources.LINE_SCHEMA)."""
    return list(zip(batch.column("where").to_pylist(), batch.column("record").to_pylist(),
                    batch.column("block").to_pylist(), strict=True))


def note_block_sizes(batch: pa.Table, stats: BlockStats) -> None:
    """Each input block's size, for the check that a block was read whole."""
    for block, size in set(zip(batch.column("block").to_pylist(),
                               batch.column("block_size").to_pylist(), strict=True)):
        stats.of(block).peak(BLOCK_RECORDS, size)


REQUIRED_FIELDS = ("refcode", "funcname", "ios")
# the one field of the record that stands for the rest of a file that broke off (jobs.sources)
READ_ERROR = "__groundtrace_read_error__"
CALL_FIELDS = ("code", "input", "output")  # the call format: one function call per record
INPUT_FORMATS = ("auto", "pyedu", "call")


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
    call_format: bool = False  # inputs are Python argument lists, outputs Python literals


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
    jail: str  # which of the trace actor's jails runs it (raw_filter.jail_for)
    runs: list[Run] = field(default_factory=list)
    call_format: bool = False

    def row(self) -> dict:
        return row(PROGRAM, asdict(self))

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


def is_call_record(record: dict, input_format: str = "auto") -> bool:
    """Whether the read stage takes ``record`` in the call format: asked for, or (``auto``)
    code/input/output and no refcode."""
    return input_format == "call" or (input_format == "auto" and "refcode" not in record
                                      and all(key in record for key in CALL_FIELDS))


def parse_record(text: str, where: str, input_format: str = "auto") -> Program | Reject:
    """One JSONL line (or one Parquet row as JSON) to a Program, or a read-stage Reject.
    ``auto`` reads a record with code/input/output and no refcode as the call format."""
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        return Reject(where, "", "read", "invalid_json", f"{type(exc).__name__}: {exc}"[:300])
    if not isinstance(record, dict):
        return Reject(where, "", "read", "not_an_object", type(record).__name__)
    if READ_ERROR in record:
        return Reject(where, "", "read", "damaged_file", str(record[READ_ERROR])[:500])
    if is_call_record(record, input_format):
        return parse_call_record(record, where)
    missing = [key for key in REQUIRED_FIELDS if key not in record]
    if missing:
        return Reject(where, "", "read", "missing_field", ", ".join(missing))
    ios = record["ios"]
    if isinstance(ios, str):  # Parquet writers often keep nested JSON as text
        try:
            ios = json.loads(ios)
        except (ValueError, RecursionError):
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


def entry_function(code: str, entry: Any) -> str:
    """The function a call-format record calls: ``entry``, else the only top-level def, else f."""
    if isinstance(entry, str) and entry:
        return entry
    try:
        defs = [n.name for n in ast.parse(code).body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    except (SyntaxError, ValueError):
        return "f"  # the program filter reports the syntax error
    return defs[0] if len(defs) == 1 else "f"


def parse_call_record(record: dict, where: str) -> Program | Reject:
    """A ``{code, input, output, id?, entry?}`` record: one call of one function."""
    missing = [key for key in CALL_FIELDS if key not in record]
    if missing:
        return Reject(where, "", "read", "missing_field", ", ".join(missing))
    if not all(isinstance(record[key], str) for key in CALL_FIELDS):
        return Reject(where, "", "read", "bad_field", "code, input and output must be strings")
    given_id = record.get("id")
    if isinstance(given_id, (str, int)) and not isinstance(given_id, bool) and str(given_id):
        problem_id = str(given_id)
    else:
        problem_id = problem_id_for({"funcname": record.get("entry"), "refcode": record["code"],
                                     "problem_description": record["input"]})
    return Program(
        problem_id=problem_id, problem_description=str(record.get("problem_description") or ""),
        io_requirements=str(record.get("io_requirements") or ""), refcode=record["code"],
        funcname=entry_function(record["code"], record.get("entry")),
        pairs=[Pair(0, record["input"], record["output"])], call_format=True,
    )


def call_argument_nodes(text: str) -> ast.Call:
    """``"[1, 2], key=3"`` parsed as the arguments of a call (``_(...)``), each an expression;
    raises ValueError for text that is no plain argument list."""
    try:
        call = ast.parse(f"_({text})", mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise ValueError(f"not an argument list: {exc}") from None
    if not isinstance(call, ast.Call) or any(isinstance(a, ast.Starred) for a in call.args) or any(
            k.arg is None for k in call.keywords):
        raise ValueError("not a plain argument list")
    return call


def parse_call_arguments(text: str) -> tuple[list, dict]:
    """``"[1, 2], key=3"`` -> ([[1, 2]], {"key": 3}) with ast.literal_eval; raises ValueError."""
    call = call_argument_nodes(text)
    try:
        return ([ast.literal_eval(a) for a in call.args],
                {k.arg: ast.literal_eval(k.value) for k in call.keywords})
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"an argument is not a literal: {exc}") from None


def parse_literal_output(text: str) -> Any:
    """A Python literal (a call-format expected output, a returned repr, an answer) read with
    ast.literal_eval; raises ValueError."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(str(exc) or "not a literal") from None


class _Invalid:
    """Marks a pair that is not ``{"input": ..., "output": ...}``."""

    def __repr__(self) -> str:
        return "<invalid pair>"


_INVALID = _Invalid()


def is_invalid(value: Any) -> bool:
    return value is _INVALID
