"""Trace filter: which successful runs make usable traces (the reference method's rules)."""

from __future__ import annotations

EXCEPTION_MARKER = "!!!"


def count_lines(trace: str) -> int:
    return len(trace.strip().split("\n")) if trace.strip() else 0


def trace_problem(trace: str, funcname: str, max_lines: int) -> tuple[str, str] | None:
    """(reason, detail) when the trace is not usable, else None."""
    if EXCEPTION_MARKER in trace:
        return "exception_in_trace", "the program raised (and caught) an exception"
    lines = count_lines(trace)
    if lines >= max_lines:
        return "too_many_lines", f"{lines} lines (limit {max_lines})"
    last = trace.strip().split("\n")[-1].strip() if lines else ""
    if not last.startswith(f"<<< Return value from {funcname}:"):
        return "no_return_line", f"last line is {last[:120]!r}"
    return None
