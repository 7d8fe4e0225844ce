"""Variable-tracing questions sampled from a kept trace, answered by the trace itself.

Two kinds, both about the entry function's own frame (its lines are always traced, whatever
snoop's depth; traces that call the entry function again are left alone, since "the k-th time
line N runs" would then mix frames):

- value: "what is the value of `total` right after line 7 runs for the 3rd time?", where the
  trace printed ``total = <value>`` right after that very execution of line 7. The answer is
  that printed value, which must read back as a Python literal (snoop's abbreviated values,
  with ``...``, are never asked about);
- count: "how many times does line 5 run?", for a line that runs at least twice (and that
  snoop never prints again on resuming, which a reader would count as a run).

Each question keeps the part of the trace that answers it (up to the next line the entry
function runs; the whole trace for a count), which the renderer or the LLM turns into the
reasoning. Sampling is seeded by the trace's id; one trace never gets two questions with the
same answer text.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass

from trace_workers.records import parse_literal_output
from translate.trace_model import CALL_EVENT, LINE, RESUME, START, parse_trace

_NAME = re.compile(r"^[A-Za-z_]\w*$")


@dataclass
class Question:
    kind: str  # "value" or "count"
    text: str
    answer: str  # a Python literal
    trace: str  # the part of the trace that answers it
    lineno: int


@dataclass
class _Event:
    """One line the entry function ran, and the values printed right after it."""

    index: int  # position in the trace's lines
    lineno: int
    code: str
    changes: list[list[str]]


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def entry_events(trace: str, funcname: str) -> tuple[list[str], list[_Event], int, set[int]] | None:
    """The trace's lines, the entry frame's line events, the index where that frame returns,
    and the lines snoop printed again (see below); None when the entry function is called
    again (recursion) or never called.

    snoop prints a frame's current line again when the frame resumes after another frame
    (a call returning, a comprehension's result): that is not a new run of the line. Lines
    inside a comprehension belong to the comprehension's frame.
    """
    model = parse_trace(trace)
    if any(e.kind in (CALL_EVENT, START, RESUME) and e.depth > 1 and e.name == funcname
           for e in model.events):
        return None  # the entry function again
    runs = [e for e in model.events if e.kind == LINE and e.depth == 1 and not e.reprint
            and not e.in_comprehension]
    if not runs:
        return None
    changes: dict[int, list[list[str]]] = {}
    for change in model.changes:
        if change.printed and not change.in_comprehension and change.run >= 0:
            changes.setdefault(change.run, []).append([change.name, change.text])
    events = [_Event(e.at, e.lineno, e.code.strip(), changes.get(e.position, [])) for e in runs]
    reprinted = {e.lineno for e in model.events if e.kind == LINE and e.reprint}
    end = model.entry_end if model.entry_end >= 0 else len(model.lines)
    return model.lines, events, end, reprinted


def _literal(value: str) -> bool:
    if "\n" in value or "..." in value or len(value) > 200:
        return False
    try:
        parse_literal_output(value)
    except ValueError:
        return False
    return True


def multiline_statement_lines(code: str) -> set[int]:
    """The lines of statements written over several lines (a simple statement's lines, a
    compound statement's header lines). snoop prints such a statement's first line again when
    it finishes (``return {`` / ``"a": 1,`` / ``}`` shows lines 9, 10, 11, 9) where Python runs
    it once: questions about those lines would count runs that never happened."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    out: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or node.end_lineno is None:
            continue
        last = node.lineno
        for child in ast.iter_child_nodes(node):  # a compound statement: its header's parts
            if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
                continue
            for part in ast.walk(child):  # (arguments have no line of their own)
                if getattr(part, "lineno", 0) >= node.lineno:  # decorators stand above it
                    last = max(last, part.end_lineno or last)
        if not any(isinstance(child, ast.stmt) for child in ast.iter_child_nodes(node)):
            last = node.end_lineno  # a simple statement: all of it
        if last > node.lineno:
            out.update(range(node.lineno, last + 1))
    return out


def candidate_questions(trace: str, funcname: str, code: str = "") -> list[Question]:
    """Every question the trace answers; ``code`` (the program) leaves out the lines of
    statements written over several lines (see :func:`multiline_statement_lines`)."""
    found = entry_events(trace, funcname)
    if found is None:
        return []
    lines, events, end, reprinted = found
    skipped = multiline_statement_lines(code) if code else set()
    out: list[Question] = []
    runs: dict[int, int] = {}
    for position, event in enumerate(events):
        runs[event.lineno] = runs.get(event.lineno, 0) + 1
        cut = events[position + 1].index if position + 1 < len(events) else end
        if event.lineno in skipped:
            continue
        for name, value in event.changes:
            if not _NAME.match(name) or not _literal(value):
                continue
            nth = runs[event.lineno]
            out.append(Question(
                "value",
                f"What is the value of `{name}` right after line {event.lineno} "
                f"(`{event.code}`) runs for the {ordinal(nth)} time?",
                value, "\n".join(lines[:cut]), event.lineno))
    codes = {event.lineno: event.code for event in events}
    for lineno, count in runs.items():
        # a reprinted line reads as run twice
        if count >= 2 and lineno not in reprinted and lineno not in skipped:
            out.append(Question("count", f"How many times does line {lineno} (`{codes[lineno]}`) "
                                f"run during this call?", str(count), "\n".join(lines[:end + 1]),
                                lineno))
    return out


def sample_questions(trace: str, funcname: str, how_many: int, seed: str,
                     code: str = "") -> list[Question]:
    """Up to ``how_many`` questions, seeded, no two with the same answer text."""
    candidates = candidate_questions(trace, funcname, code)
    random.Random(seed).shuffle(candidates)
    chosen: list[Question] = []
    answers: set[str] = set()
    for question in candidates:
        if len(chosen) >= how_many:
            break
        if question.answer not in answers:
            answers.add(question.answer)
            chosen.append(question)
    return chosen
