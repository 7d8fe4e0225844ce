"""A long run told in few lines: the digest, a view of a trace's events that folds what repeats.

A trace over the story budget (``--max-trace-lines``) is not thrown away: its digest keeps
the run's shape and folds the rest, on the one trace model (:mod:`translate.trace_model`):

- a loop run of many iterations keeps its first iterations and its last one whole; the
  iterations between them become one :class:`LoopFold`, which holds the count folded and
  each variable's value (of the loop's frame) where the fold ends, as the trace prints it;
- a call nested deeper than the level allows keeps its arguments and its return; the steps
  between become one :class:`CallFold`;
- folds are made from the inside out (inner loops first, then every loop, then fewer whole
  iterations, then calls from the deepest up) until what is told fits the budget.

A run recorded with elision (trace_workers.jail.elision) has spans, which every level folds:
a loop span with the iterations before it down to the level's head, a call span as a call
fold; such a run is never told whole.

A fold never invents a value: each one it states is a change the trace printed (or the
literal the model adds for ``total = 0``). The renderer tells the folds
(:mod:`translate.render`), the LLM's prompt shows :meth:`Digest.text`, and the step check
verifies what is said of a fold against the whole run (:mod:`translate.steps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trace_workers.trace_filter import count_lines
from translate.trace_model import (
    CALL_EVENT,
    LINE,
    RETURN_EVENT,
    SPAN,
    UNTRACED,
    Trace,
    loop_runs,
    parse_trace,
    program_loops,
)

# (whole iterations kept at a loop's start, at its end, the deepest call told step by step
# (None: all), which loops fold: "inner" (those holding no other loop run) or "all"), tried
# in order until the story fits
LEVELS: tuple[tuple[int, int, int | None, str], ...] = (
    (3, 1, None, "inner"), (3, 1, None, "all"), (2, 1, None, "all"), (1, 1, None, "all"),
    (1, 1, 8, "all"), (1, 1, 5, "all"), (1, 1, 3, "all"), (1, 1, 2, "all"), (1, 1, 1, "all"),
)


@dataclass(frozen=True, slots=True)
class LoopFold:
    """Iterations ``first`` to ``last`` of one loop run, told as one step."""

    start: int  # index in the trace's events of the first event folded (a header run)
    end: int  # index of the first event told after it (the header run of iteration last + 1)
    frame: int
    header: int  # the loop's line
    code: str  # the header's source
    first: int
    last: int
    values: tuple[tuple[str, str], ...]  # (name, value as printed) where the fold ends
    hidden_lines: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class CallFold:
    """The steps of one call between its arguments and its return."""

    start: int  # index of the first event folded (the call's first line run)
    end: int  # index of the call's return event (told by the fold)
    frame: int
    name: str
    args: tuple[tuple[str, str], ...]
    value: str
    hidden_lines: int


Fold = LoopFold | CallFold


@dataclass
class Digest:
    """The folds of one trace (none when it fits the budget whole) and the lines told."""

    trace: Trace
    folds: list[Fold] = field(default_factory=list)
    told_lines: int = 0
    level: int = 0  # 0: whole; else 1 + the index in LEVELS

    @property
    def folded_iterations(self) -> int:
        return sum(f.count for f in self.folds if isinstance(f, LoopFold))

    @property
    def folded_calls(self) -> int:
        return sum(1 for f in self.folds if isinstance(f, CallFold))

    def text(self) -> str:
        """The trace as the LLM sees it: the lines told, one marker line per fold."""
        lines = self.trace.lines
        if not self.folds:
            return "\n".join(lines)
        events = self.trace.events
        out: list[str] = []
        at = 0
        for fold in self.folds:
            begin, finish = events[fold.start].at, events[fold.end].at
            out.extend(lines[at:begin])
            indent = " " * (len(lines[begin]) - len(lines[begin].lstrip()))
            out.append(indent + marker(fold))
            at = finish
        out.extend(lines[at:])
        return "\n".join(out)


def one_line(text: str) -> str:
    """A value printed over several lines, on one (pformat breaks between items)."""
    return " ".join(part.strip() for part in text.split("\n"))


def marker(fold: Fold) -> str:
    if isinstance(fold, LoopFold):
        values = ", ".join(f"{name} = {one_line(text)}" for name, text in fold.values)
        after = f"; after iteration {fold.last}: {values}" if values else ""
        return (f"... (the loop at line {fold.header} runs {fold.count} more times, iterations "
                f"{fold.first} to {fold.last}, left out here{after})")
    return (f"... (the steps of this call are left out here: {fold.hidden_lines} lines; "
            f"{fold.name} returns {one_line(fold.value)})")


class _Structure:
    """What can fold in one trace: its loop runs and calls, indexed once for every level."""

    def __init__(self, trace: Trace, code: str) -> None:
        self.trace = trace
        events = trace.events
        self.index = {event.position: number for number, event in enumerate(events)}
        self.runs = loop_runs(trace, program_loops(code)) if code else []
        # runs come in order of their start: one holds another when the next starts inside it
        self.inner = {id(r) for r, after in zip(self.runs, [*self.runs[1:], None], strict=False)
                      if after is None or after.start >= r.end}
        self.returns: dict[int, int] = {}  # a call's frame -> the index of its return
        for number, event in enumerate(events):
            if event.kind == RETURN_EVENT:
                self.returns.setdefault(event.frame, number)
        self.calls = [number for number, event in enumerate(events) if event.kind == CALL_EVENT]
        # what the tracer left untraced (trace_workers.jail.elision): always folded
        self.spans = [number for number, event in enumerate(events) if event.kind == SPAN]
        # ...and calls it did not follow: such a run is never told as whole (no question asks
        # how often a line ran, the prompt says what the line means)
        self.elided = bool(self.spans) or any(event.kind == UNTRACED for event in events)
        self.total = count_lines("\n".join(trace.lines))

    def at_level(self, level: int) -> Digest | None:
        """The digest at ``level``; None when a span would be told unfolded there."""
        head, tail, deepest, scope = LEVELS[level - 1]
        folds = _outermost(self.loop_folds(head, tail, scope) + self.call_folds(deepest)
                           + self.spanned_calls())
        if not all(any(f.start <= number < f.end for f in folds) for number in self.spans):
            return None
        told = self.total - sum(f.hidden_lines for f in folds) + len(folds)
        return Digest(self.trace, folds, told, level)

    def loop_folds(self, head: int, tail: int, scope: str) -> list[LoopFold]:
        """Each loop run's middle iterations, a run that ends in a span up to its end."""
        events, folds = self.trace.events, []
        for run in self.runs:
            if run.spanned:
                first, last = min(head + 1, run.untraced[0]), run.iterations
            elif scope == "inner" and id(run) not in self.inner:
                continue
            else:
                first, last = head + 1, run.iterations - tail
                if last - first + 1 < 2:
                    continue
            start = self.index.get(run.iteration_start(first))
            end = self.index.get(run.iteration_ends[last - 1])
            if start is None or end is None or not self._clean(start, end, run.frame, run.header,
                                                               run.spanned):
                continue
            values: dict[str, str] = {}
            for event in events[start:end]:
                for change in event.changes:
                    if change.frame == run.frame and not change.in_comprehension:
                        values.pop(change.name, None)  # in the order of their last change
                        values[change.name] = change.text
            lines = events[end].at - events[start].at
            folds.append(LoopFold(start, end, run.frame, run.header, events[start].code.strip(),
                                  first, last, tuple(values.items()), lines))
        return folds

    def _clean(self, start: int, end: int, frame: int, header: int, to_exit: bool) -> bool:
        """A span that is whole iterations of its frame's loop: from a header run to the
        next (``to_exit``: to the loop's end, the next event of its frame), never returning
        to a frame above it."""
        events = self.trace.events
        first, after = events[start], events[end]
        if not (first.kind == LINE and first.lineno == header and first.frame == frame
                and after.frame == frame):
            return False
        if not to_exit and not (after.kind == LINE and after.lineno == header):
            return False
        depth = first.depth
        # a generator's loop may yield inside the span when nothing the trace follows runs
        # between its yield and its resumption (list(gen), sum(gen))
        return all(e.depth >= depth and not (e.frame == frame and e.kind == RETURN_EVENT)
                   for e in events[start:end])

    def call_folds(self, deepest: int | None) -> list[CallFold]:
        if deepest is None:
            return []
        events, folds = self.trace.events, []
        for number in self.calls:
            call = events[number]
            if call.depth <= deepest:
                continue  # (a deeper one inside a call that folds is left out by _outermost)
            ret = self.returns.get(call.frame)
            start = number + 1
            if ret is None or ret <= start or events[start].kind != LINE:
                continue
            lines = events[ret].at - events[start].at
            folds.append(CallFold(start, ret, call.frame, call.name,
                                  tuple((c.name, c.text) for c in call.changes),
                                  events[ret].value, lines))
        return folds

    def spanned_calls(self) -> list[CallFold]:
        """A call span's call: its arguments, the span, its return."""
        events, folds = self.trace.events, []
        for number in self.spans:
            span = events[number]
            if span.lineno:
                continue
            call = next((at for at in range(number - 1, -1, -1)
                         if events[at].kind == CALL_EVENT and events[at].frame == span.frame), None)
            ret = self.returns.get(span.frame)
            if call is None or ret is None:
                continue
            lines = events[ret].at - events[call + 1].at
            folds.append(CallFold(call + 1, ret, span.frame, events[call].name,
                                  tuple((c.name, c.text) for c in events[call].changes),
                                  events[ret].value, lines))
        return folds


def _outermost(folds: list[Fold]) -> list[Fold]:
    """The folds no other fold holds (a fold that would cut another in two is left out)."""
    kept: list[Fold] = []
    for fold in sorted(folds, key=lambda f: (f.start, -f.end)):
        if kept and fold.start < kept[-1].end:
            continue
        kept.append(fold)
    return kept


def digest(trace: Trace | str, code: str, budget: int) -> Digest | None:
    """The trace told within ``budget`` lines (fewer than it): whole when it fits, else folded
    at the first level of :data:`LEVELS` that fits; None when even the last does not."""
    model = parse_trace(trace) if isinstance(trace, str) else trace
    structure = _Structure(model, code)
    if structure.total < budget and not structure.elided:
        return Digest(model, [], structure.total, 0)
    for level in range(1, len(LEVELS) + 1):
        told = structure.at_level(level)
        if told is not None and told.told_lines < budget:
            return told
    return None


def digest_at(trace: Trace | str, code: str, level: int) -> Digest:
    """The digest at a level :func:`digest` chose (the trace stage stores it with the trace:
    the renderer and the prompt tell the run as the budget it was kept under allows)."""
    model = parse_trace(trace) if isinstance(trace, str) else trace
    structure = _Structure(model, code)
    if not 0 < level <= len(LEVELS):
        return Digest(model, [], structure.total, 0)
    return structure.at_level(level) or Digest(model, [], structure.total, 0)
