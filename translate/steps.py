"""Checking every step of a reasoning against the trace, each at its place in the run.

A translation that reaches the right answer through a wrong step (a loop counter one too
high, an update it forgot, a branch it took the wrong way) teaches the very error the method
exists to remove. The reasoning's claims (:mod:`translate.step_text`) are walked in text
order with a position in the run (the trace's events, :mod:`translate.trace_model`):

- "Line N:" moves the position to the next run of line N; the statements after it (to the
  next anchor or the end of the text line) are about that run;
- a change ("`x` becomes v") must be the value of ``x``'s change on the anchored run when it
  changes ``x`` there, else ``x``'s next change after the position; the position moves to it.
  Stating the value it already had is right only right after that change was stated (a
  restatement), never in place of the next one (a forgotten update);
- a state ("`x` is v", "with `n` = 3") may also be the value ``x`` holds at the position, in
  its frame or a frame still open under it (a recursive caller);
- a statement whose sentence says it summarises ("after the loop", "finally", "after 3
  iterations") may pass over ``x``'s changes, and must then equal its value at that point: where
  a loop run the position is in (or the next one) ends, where its frame returns, or where
  that iteration ends;
- "`f` returns v" must be the next return of ``f``;
- a branch's outcome ("we check `c`: it is true", "we skip its block", "the loop ends") is
  checked at the condition it names (the anchored line, the code it quotes, else the next
  condition the run evaluates): the line its frame runs next tells whether the block ran;
- "the loop runs N times" is checked on the loop it names (its code or its line), in the run
  the position is in (else the next run, else the last).

A statement about a name the trace never shows, or a value that is not a literal, is not
checked. ``coverage`` is the share of the trace's printed value changes that right steps state.
The first wrong step is named, with what the trace holds there, and its kind: ``value``,
``branch`` or ``loop_count``.
"""

from __future__ import annotations

import ast
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from trace_workers.canonical import python_values_match, values_match
from translate.step_text import (
    NOT_READ,
    NOT_READ_SPAN,
    Abbreviated,
    Anchor,
    BranchClaim,
    CallClaim,
    LoopCountClaim,
    ReturnClaim,
    ValueClaim,
    abbreviated,
    literal,
    ordinal,
    read_claims,
)
from translate.trace_model import (
    CALL_EVENT,
    CONDITION,
    FOR,
    LINE,
    RETURN_EVENT,
    YIELD_EVENT,
    Change,
    Event,
    LoopRun,
    Trace,
    block_ends,
    enters_block,
    frame_lines,
    loop_runs,
    parse_trace,
    program_loops,
)

KINDS = ("value", "branch", "loop_count")
# a value the check cannot read is held to the trace's text when the reasoning copies at least
# this many of its first characters (spaces aside): a copy must then be whole
COPIED_HEAD = 8


@dataclass
class StepCheck:
    checked: int = 0
    right: int = 0
    changes: int = 0  # printed value changes in the trace
    stated: int = 0  # of those, how many right steps state
    wrong: str = ""  # the first wrong step, in words
    wrong_kind: str = ""  # its kind: value, branch or loop_count
    checked_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def coverage(self) -> float:
        return self.stated / self.changes if self.changes else 1.0


def _same(held: Any, stated: Any, rel_tol: float) -> bool:
    """As Python compares values, or as JSON does (a list written for a tuple is the same
    step: prose need not tell them apart)."""
    if python_values_match(held, stated, rel_tol):
        return True
    try:
        return values_match(held, stated, rel_tol)
    except (TypeError, ValueError, RecursionError):
        return False


class _Run:
    """The trace indexed for the walk: each name's changes, each line's runs, each frame's
    lines, the open frames after each event; outcomes and loop runs worked out when asked."""

    def __init__(self, trace: Trace, code: str, rel_tol: float) -> None:
        self.trace, self.code, self.rel_tol = trace, code, rel_tol
        self.by_name: dict[str, list[Change]] = {}
        for change in trace.changes:
            if not change.restated:
                self.by_name.setdefault(change.name, []).append(change)
        self.name_positions = {name: [c.position for c in changes]
                               for name, changes in self.by_name.items()}
        self.runs_of_line: dict[int, list[Event]] = {}
        self.frame_lines = frame_lines(trace)  # each frame's runs (no reprints), its spans
        self.event_positions: list[int] = []
        self.stacks: list[tuple[int, ...]] = []  # the open frames after each event
        self.returns: list[Event] = []
        self.group: dict[int, int] = {}  # a change's position -> its owner's
        stack: list[int] = []
        for event in trace.events:
            if event.kind == LINE:
                self.runs_of_line.setdefault(event.lineno, []).append(event)
            if event.kind in ("call", "start", "resume"):
                stack.append(event.frame)
            elif event.kind in (RETURN_EVENT, YIELD_EVENT):
                self.returns.append(event)
                if stack:
                    stack.pop()
            self.event_positions.append(event.position)
            self.stacks.append(tuple(stack))
        for change in trace.changes:
            self.group[change.position] = change.owner if change.owner >= 0 else change.position
        self.event_at = {event.position: event for event in trace.events}
        self.calls = [event for event in trace.events if event.kind == CALL_EVENT]
        self.call_positions = [event.position for event in self.calls]
        self.return_of: dict[int, Event] = {}  # a call's frame -> its return
        for event in self.returns:
            if event.kind == RETURN_EVENT:
                self.return_of.setdefault(event.frame, event)
        self.values: dict[int, tuple[bool, Any]] = {}
        self._ends: dict[int, int] | None = None
        self._next_in_frame: dict[int, Event | None] | None = None
        self._loops: list[tuple[int, int, int]] | None = None
        self._loop_runs: list[LoopRun] | None = None
        self._variadic: set[str] | None = None

    # -- values ----------------------------------------------------------------------------
    def value(self, change: Change) -> tuple[bool, Any]:
        """A change's value, read the first time a step asks (most are never stated)."""
        known = self.values.get(change.position)
        if known is None:
            known = literal(change.text) if "..." not in change.text else (False, None)
            self.values[change.position] = known
        return known

    def holds(self, change: Change | None, stated: Any) -> bool:
        if change is None:
            return False
        if isinstance(stated, Abbreviated):
            return abbreviated(change.text) == stated
        ok, held = self.value(change)
        return ok and _same(held, stated, self.rel_tol)

    def open_frames(self, position: int) -> tuple[int, ...]:
        """The frames open at ``position``, the innermost last."""
        at = bisect_right(self.event_positions, position) - 1
        if at < 0:
            return (0,)
        event = self.trace.events[at]
        stack = self.stacks[at]
        if event.position != position and position in self.group:  # a change: its own frame
            return stack
        return stack or (event.frame,)

    def frame_at(self, position: int) -> int:
        frames = self.open_frames(position)
        return frames[-1] if frames else 0

    def last_change(self, name: str, before: int, frames: tuple[int, ...] | None) -> Change | None:
        """``name``'s last change at a position below ``before``: in the innermost of
        ``frames`` that has one (any frame when None)."""
        changes = self.by_name.get(name, [])
        at = bisect_left(self.name_positions.get(name, []), before) - 1
        if frames is None:
            return changes[at] if at >= 0 else None
        for frame in reversed(frames):
            for index in range(at, -1, -1):
                if changes[index].frame == frame:
                    return changes[index]
        return None

    def next_change(self, name: str, after: int, skip: set[int]) -> Change | None:
        changes = self.by_name.get(name, [])
        for index in range(bisect_right(self.name_positions.get(name, []), after), len(changes)):
            if changes[index].position not in skip:
                return changes[index]
        return None

    def group_start(self, position: int) -> int:
        return self.group.get(position, position)

    # -- lines, branches, loops ------------------------------------------------------------
    def next_run(self, lineno: int, after: int) -> Event | None:
        for event in self.runs_of_line.get(lineno, []):
            if event.position > after:
                return event
        return None

    def outcome(self, event: Event) -> bool | None:
        """Whether the block (or loop body) ``event``'s line opens ran after it; None when its
        frame ran no other line after it."""
        if self._next_in_frame is None:
            self._next_in_frame = {}
            for lines in self.frame_lines.values():
                for before, after in zip(lines, lines[1:] + [None], strict=True):
                    self._next_in_frame[before.position] = after
        following = self._next_in_frame.get(event.origin)
        if following is None:
            return None
        if self._ends is None:
            self._ends = block_ends(self.code) if self.code else {}
        return enters_block(event, following, self._ends)

    def loops(self) -> list[tuple[int, int, int]]:
        """(header line, first and last line of the body) of every loop in the program."""
        if self._loops is None:
            self._loops = program_loops(self.code)
        return self._loops

    def loop_runs(self) -> list[LoopRun]:
        if self._loop_runs is None:
            self._loop_runs = loop_runs(self.trace, self.loops(), self.frame_lines)
        return self._loop_runs

    def variadic(self) -> set[str]:
        """The program's functions that take ``*args`` or ``**kwargs``."""
        if self._variadic is None:
            try:
                tree = ast.parse(self.code)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                tree = None
            self._variadic = {node.name for node in (ast.walk(tree) if tree else ())
                              if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                              and (node.args.vararg or node.args.kwarg)}
        return self._variadic

    def runs_for(self, position: int, headers: set[int] | None) -> list[LoopRun]:
        """The loop runs ``position`` is in, the innermost first, then the next one."""
        runs = [r for r in self.loop_runs() if headers is None or r.header in headers]
        inside = sorted((r for r in runs if r.start <= position < r.end), key=lambda r: -r.start)
        return inside + [r for r in runs if r.start > position][:1]

    def run_for(self, position: int, headers: set[int] | None, frame: int | None) -> LoopRun | None:
        """The loop run ``position`` is in (the innermost), else the next, else the last."""
        runs = [r for r in self.loop_runs() if (headers is None or r.header in headers)
                and (frame is None or r.frame == frame)]
        inside = [r for r in runs if r.start <= position < r.end]
        if inside:
            return max(inside, key=lambda r: r.start)
        later = [r for r in runs if r.start > position]
        if later:
            return later[0]
        return runs[-1] if runs else None


def _lines_named(run: _Run, quoted: list[str], loops_only: bool) -> set[int]:
    """The lines whose condition, loop header or loop iterable is one of the quoted texts."""
    wanted = {" ".join(q.split()) for q in quoted}
    if not wanted:
        return set()
    found = set()
    for lineno, events in run.runs_of_line.items():
        code = events[0].code.strip()
        if (m := CONDITION.match(code)) and not (loops_only and m.group(1) != "while"):
            texts = {m.group(2), code.rstrip(":")}
        elif m := FOR.match(code):
            texts = {m.group(2), m.group(1), f"{m.group(1)} in {m.group(2)}", code.rstrip(":")}
        else:
            continue
        if wanted & {" ".join(t.split()) for t in texts}:
            found.add(lineno)
    return found


def _line_class(event: Event) -> str:
    code = event.code.strip()
    if m := CONDITION.match(code):
        return "while" if m.group(1) == "while" else "if"
    return "for" if FOR.match(code) else ""


class _Walk:
    """One reasoning walked against one trace (see the module)."""

    def __init__(self, run: _Run, result: StepCheck) -> None:
        self.run, self.result = run, result
        self.position = -1
        self.anchor: Event | None = None
        self.anchor_end = -1
        self.used_changes: set[int] = set()
        self.used_branches: set[int] = set()
        self.last_stated: dict[str, int] = {}
        self.last_taken = -2  # the last change a step stated
        self.stated: set[int] = set()
        # a loop told in one step ("runs 37 more times"): (its run, where that sentence ends,
        # the last iteration it tells); the sentence's values are where that iteration ends
        self.fold: tuple[LoopRun, int, int] | None = None
        self.floor = 0  # what lies before it was told (a fold): no later step is about it

    def move(self, position: int) -> None:
        if position > self.position:
            self.last_taken = -2  # the run moved on: what was stated last is no longer "now"
            self.position = position

    def count(self, kind: str, right: bool, wrong: str) -> None:
        self.result.checked += 1
        self.result.checked_by_kind[kind] = self.result.checked_by_kind.get(kind, 0) + 1
        if right:
            self.result.right += 1
        elif not self.result.wrong:
            self.result.wrong, self.result.wrong_kind = wrong, kind

    def take(self, change: Change, name: str) -> None:
        self.used_changes.add(change.position)
        self.last_stated[name] = change.position
        self.last_taken = change.position
        if change.printed:
            self.stated.add(change.position)
        self.move(change.position)

    # -- claims ----------------------------------------------------------------------------
    def anchor_at(self, claim: Anchor) -> None:
        self.anchor = self.run.next_run(claim.lineno, self.position)
        self.anchor_end = claim.end
        if self.anchor is not None:
            self.move(self.anchor.position)

    def value(self, claim: ValueClaim) -> None:
        run, name = self.run, claim.name
        if name not in run.by_name:
            return
        if claim.value is NOT_READ:
            if self.fold is not None and claim.at < self.fold[1]:
                self.fold_text(claim)
            elif claim.change:
                self.mark(claim)
            return
        if isinstance(claim.value, Abbreviated) and not any(
                abbreviated(c.text) == claim.value for c in run.by_name[name]):
            return  # shortened its own way: nothing to compare
        if self.fold is not None and claim.at < self.fold[1] and claim.summary != "iteration":
            claim.summary, claim.iteration = "iteration", self.fold[2]
        if claim.summary and self.summary(claim):
            return
        anchored = [c for c in self.anchor.changes if c.name == name] if self.anchor else []
        if anchored:
            match = next((c for c in anchored if run.holds(c, claim.value)), None)
            if match is None and not claim.change:
                held = run.last_change(name, self.anchor.position, run.open_frames(self.position))
                if run.holds(held, claim.value):
                    self.count("value", True, "")
                    return
            if match is not None:
                self.take(match, name)
            self.count("value", match is not None, self.wrong_value(
                claim, anchored[0], f"at line {self.anchor.lineno}"))
            return
        start = max(run.group_start(self.position), self.floor - 1)
        following = run.next_change(name, start, self.used_changes)
        while following is not None and not following.printed \
                and not run.holds(following, claim.value):
            # `heap = []` told as code, not as a value: the text may pass over it
            later = run.next_change(name, following.position, self.used_changes)
            if later is None or not run.holds(later, claim.value):
                break
            following = later
        if run.holds(following, claim.value):
            self.take(following, name)
            self.count("value", True, "")
            return
        frames = run.open_frames(self.position)
        held = run.last_change(name, self.position + 1, frames[-1:])
        if claim.change:
            # a restatement of the change just stated, not a value it had before
            right = run.holds(held, claim.value) and self.last_stated.get(name) == self.last_taken
        else:
            right = any(run.holds(run.last_change(name, self.position + 1, f), claim.value)
                        for f in (frames[-1:], frames, None))
        self.count("value", right, "" if right else self.wrong_value(claim, following, "", held))

    def fold_text(self, claim: ValueClaim) -> None:
        """A fold's value the check cannot read (deque([1, 2]), <Node object>): the fold's
        values are the trace's text where it ends, so the text is compared (spaces aside)."""
        loop, _, last = self.fold
        held = self.run.last_change(claim.name, loop.iteration_ends[last - 1], (loop.frame,))
        if held is None:
            return
        value = "".join(held.text.split())
        stated = "".join(claim.shown.split())
        right = stated.startswith(value) and stated[len(value):len(value) + 1] in ("", ",", ".",
                                                                                 ";", "a")
        if len(claim.shown) >= NOT_READ_SPAN - 1:  # a value longer than the text kept of it
            right = right or value.startswith(stated)
        self.count("value", right, f"`{claim.name}` = {claim.shown[:80]} when that iteration "
                                   f"ends: the trace has {held.text[:80]} there")

    def mark(self, claim: ValueClaim) -> None:
        """A change stated in words the check cannot read (`seen` becomes set()): when they
        copy the text of the change the trace shows next (on the anchored run, else the next
        change of that name), the position moves to it; nothing is counted."""
        run = self.run
        anchored = [c for c in self.anchor.changes if c.name == claim.name] if self.anchor else []
        following = anchored[0] if anchored else run.next_change(
            claim.name, max(run.group_start(self.position), self.floor - 1), self.used_changes)
        if following is None:
            return
        head = " ".join(following.text.split())[:60]
        if head and " ".join(claim.shown.split()).startswith(head):
            self.take(following, claim.name)

    def summary(self, claim: ValueClaim) -> bool:
        """A summarised value: right when it is the value at one of the points its sentence
        names (see the module); the position moves there."""
        run = self.run
        frame = run.frame_at(self.position)
        points: list[int] = []
        loop = run.run_for(self.position, None, frame)
        if self.fold is not None and claim.at < self.fold[1]:
            loop = self.fold[0]
            frame = loop.frame
        if claim.summary == "iteration" and loop is not None and loop.iteration_ends:
            n = claim.iteration
            if n > 0 and not loop.traced_end(n):
                self.count("value", False, f"`{claim.name}` when iteration {n} of the loop at "
                           f"line {loop.header} ends: the trace did not follow that iteration")
                return True
            if n == -1 or n > len(loop.iteration_ends):
                points.append(loop.iteration_ends[-1])
            else:
                points.append(loop.iteration_ends[n - 1])
        elif claim.summary in ("loop", "end"):
            # the loops the position is in, the innermost first (the one just walked)
            points += [r.end for r in sorted(run.loop_runs(), key=lambda r: -r.start)
                       if r.frame == frame and r.start <= self.position < r.end]
            if loop is not None:
                points.append(loop.end)
            ended = [r.end for r in run.loop_runs() if r.frame == frame and r.end <= self.position]
            points += ended[-1:]
            if claim.summary == "end":
                points += [e.position for e in run.returns if e.frame in (frame, 0)]
        for point in points:
            held = run.last_change(claim.name, point, (frame,)) or \
                run.last_change(claim.name, point, None)
            if run.holds(held, claim.value):
                self.count("value", True, "")
                self.move(point - 1)
                return True
        if points and not self.plain_value_right(claim):
            point = points[0]
            held = run.last_change(claim.name, point, (frame,)) or \
                run.last_change(claim.name, point, None)
            where = {"iteration": "when that iteration ends", "loop": "when the loop ends",
                     "end": "at the end"}[claim.summary]
            self.count("value", False, f"`{claim.name}` = {claim.shown[:80]} {where}: the trace "
                       f"has {held.text[:80] if held else 'no value'} there")
            return True
        return False

    def plain_value_right(self, claim: ValueClaim) -> bool:
        """Whether a summarised statement is right as a plain step (next change or held)."""
        run = self.run
        following = run.next_change(claim.name, run.group_start(self.position), self.used_changes)
        held = run.last_change(claim.name, self.position + 1, run.open_frames(self.position))
        return run.holds(following, claim.value) or run.holds(held, claim.value)

    def wrong_value(self, claim: ValueClaim, following: Change | None, where: str,
                    held: Change | None = None) -> str:
        head = f"`{claim.name}` = {claim.shown[:80]}" + (f" {where}" if where else "")
        if following is not None:
            before = f"; it held {held.text[:80]} before" if held is not None else ""
            return (f"{head}: the trace has {following.text[:80]} here (its next change"
                    f"{self.line_of(following)}{before})")
        if held is not None:
            return f"{head}: the trace has {held.text[:80]} here (no later change)"
        return f"{head}: the trace has no such value here"

    def line_of(self, change: Change) -> str:
        owner = next((e for e in self.run.trace.events if e.position == change.owner), None)
        if owner is None or owner.kind != LINE:
            return ""
        nth = sum(1 for e in self.run.frame_lines.get(owner.frame, [])
                  if e.kind == LINE and e.lineno == owner.lineno and e.position <= owner.origin)
        return f", at line {owner.lineno}'s {ordinal(nth)} run"

    def returned(self, claim: ReturnClaim) -> None:
        if claim.args is not None or not claim.name:
            self.call_returned(claim)
            return
        event = next((e for e in self.run.returns if e.position > self.position
                      and e.kind == RETURN_EVENT and e.name == claim.name), None)
        if event is None:
            return
        if isinstance(claim.value, Abbreviated):
            right = abbreviated(event.value) == claim.value
        else:
            ok, held = literal(event.value) if "..." not in event.value else (False, None)
            if not ok:
                return
            right = _same(held, claim.value, self.run.rel_tol)
        if right:
            self.move(event.position)
        self.count("value", right, f"`{claim.name}` returns {claim.shown[:80]}: the trace has it "
                                   f"return {event.value[:80]}")

    def call_at(self, claim: CallClaim) -> None:
        """"We call `f`": the position moves to the next call of ``f`` (its arguments, when
        the text states them, are the changes that follow)."""
        short = claim.name.rsplit(".", 1)[-1]
        start = bisect_right(self.run.call_positions, self.position)
        call = next((e for e in self.run.calls[start:start + 50]
                     if e.name.rsplit(".", 1)[-1] == short), None)
        if call is not None:
            self.move(call.position)

    def call_returned(self, claim: ReturnClaim) -> None:
        """"`f(3)` returns 2": the return of the call of ``f`` with those arguments (the next
        one from the position on, else the last before); "this call returns 2": the return of
        the call whose arguments were just stated, else of the next call."""
        run = self.run
        if claim.name:
            short = claim.name.rsplit(".", 1)[-1]
            calls = [e for e in run.calls if e.name.rsplit(".", 1)[-1] == short]
            if not calls:
                return  # not a function the trace follows (a builtin, a library's)
            matching = [e for e in calls if self.arguments_match(e, claim.args)]
            start = run.group_start(self.position)
            call = next((e for e in matching if e.position >= start), None) or (
                matching[-1] if matching else None)
            if call is None and short in run.variadic():
                return  # `f(1, 2)` of a `def f(*args)`: the trace prints one tuple
            if call is None:
                self.count("value", False, f"`{claim.name}(...)` returns {claim.shown[:80]}: the "
                           f"trace has no call of `{short}` with these arguments")
                return
            frame = call.frame
        else:
            owner = run.event_at.get(run.group_start(self.position))
            if owner is None or owner.kind != CALL_EVENT:
                # a call told with no argument checkable (`self` = <object>): the next one
                at = bisect_right(run.call_positions, self.position)
                owner = run.calls[at] if at < len(run.calls) else None
            frame = owner.frame if owner is not None else run.frame_at(self.position)
        event = run.return_of.get(frame)
        if event is None or event.position < self.position and not claim.name:
            return
        if claim.value is NOT_READ:
            # not read (array([[0, 1], ...]), <Node object>), but the text is past this call;
            # where it copies the head of the value the trace printed, it must copy it whole
            # (spaces aside: the trace's first line of a long value)
            held_text, stated = "".join(event.value.split()), "".join(claim.shown.split())
            if len(held_text) >= COPIED_HEAD and stated.startswith(held_text[:COPIED_HEAD]):
                self.count("value", stated.startswith(held_text),
                           f"the call of `{event.name}` said to return {claim.shown[:80]}: the "
                           f"trace has it return {event.value[:80]}")
            self.move(event.position)
            return
        ok, held = literal(event.value) if "..." not in event.value else (False, None)
        if isinstance(claim.value, Abbreviated):
            right = abbreviated(event.value) == claim.value
        elif not ok:
            return
        else:
            right = _same(held, claim.value, run.rel_tol)
        if right:
            self.move(event.position)
        self.count("value", right, f"the call of `{event.name}` said to return {claim.shown[:80]}"
                                   f": the trace has it return {event.value[:80]}")

    def arguments_match(self, call: Event, args: tuple[list[Any], dict[str, Any]] | None) -> bool:
        positional, named = args or ([], {})
        printed = call.changes
        if printed and printed[0].name in ("self", "cls") and len(positional) < len(printed):
            printed = printed[1:]  # a method written as `obj.f(3)`
        if len(positional) > len(printed):
            return False
        by_name = {c.name: c for c in printed}
        return all(self.run.holds(c, v) for c, v in zip(printed, positional, strict=False)) and \
            all(self.run.holds(by_name.get(k), v) for k, v in named.items())

    def branch(self, claim: BranchClaim) -> None:
        run = self.run
        classes = set()
        if claim.condition:
            classes |= {"if", "while"}
        if claim.loop:
            classes |= {"for", "while"}
        # after a stated change, an outcome is about a later evaluation than the change's line
        start = max(self.position + (self.position in run.group), self.floor)
        event = None
        if self.anchor is not None and not self.anchor.in_comprehension \
                and _line_class(self.anchor) in classes:
            event = self.anchor
        if event is None:
            named = _lines_named(run, claim.quoted, loops_only=not claim.condition)
            if claim.quoted and not named:
                return  # it quotes code that is no condition: not a branch it names
            event = self.next_branch(start, classes, named)
        if event is None:
            return
        outcome = run.outcome(event)
        if outcome is None:
            return
        right = all(said == outcome for said in claim.outcomes)
        if right:
            self.used_branches.add(event.origin)
            self.move(event.position)
        code = event.code.strip().rstrip(":")
        self.count("branch", right, f"at line {event.lineno} (`{code[:80]}`) the text says "
                   f"\"{claim.phrase}\", but the trace "
                   + ("enters its block" if outcome else "does not enter its block"))

    def next_branch(self, start: int, classes: set[str], lines: set[int]) -> Event | None:
        """The first condition (of ``lines``, else of ``classes``) the run evaluates from
        ``start`` on that no earlier claim was about."""
        best = None
        for lineno in lines or self.run.runs_of_line:
            for event in self.run.runs_of_line[lineno]:
                if not lines and _line_class(event) not in classes:
                    break
                if event.position < start or event.origin in self.used_branches \
                        or event.in_comprehension:
                    continue
                if best is None or event.position < best.position:
                    best = event
                break
        return best

    def loop_count(self, claim: LoopCountClaim) -> None:
        run = self.run
        if not run.loops():
            return
        headers = {h for h, _, _ in run.loops()}
        named = _lines_named(run, claim.quoted, loops_only=True) & headers
        named |= set(claim.lines) & headers
        if not named and self.anchor is not None and self.anchor.lineno in headers:
            named = {self.anchor.lineno}
        loop = run.run_for(self.position, named or None, None)
        if loop is None:
            return
        if claim.more:
            lines = set(claim.lines) & headers
            self.loop_more(claim, run.runs_for(self.position, lines or named or None) or [loop])
            return
        self.count("loop_count", loop.iterations == claim.count,
                   f"the loop at line {loop.header} said to run {claim.count} time(s): "
                   f"it runs {loop.iterations} time(s) there")


    def loop_more(self, claim: LoopCountClaim, loops: list[LoopRun]) -> None:
        """"The loop runs N more times, iterations A to B": N iterations after those that lie
        before the position, A to B when given (the position may lag behind a text that states
        nothing checkable for a while, never run ahead of it); the position moves to where the
        last of them ends, and the sentence's values are checked there. Of the loop runs it
        may name (the innermost first), the first it fits."""
        def fits(loop: LoopRun) -> tuple[bool, int, int]:
            told = loop.told(self.position)
            if claim.first:
                told = claim.first - 1 if told <= claim.first - 1 else -1
            last = told + claim.count
            return (told >= 0 and claim.count > 0 and last <= loop.iterations
                    and claim.last in (0, last) and loop.traced_end(last)), told, last

        loop = next((candidate for candidate in loops if fits(candidate)[0]), loops[0])
        right, told, last = fits(loop)
        told = loop.told(self.position) if told < 0 else told
        said = f" (iterations {claim.first} to {claim.last})" if claim.first else ""
        self.count("loop_count", right,
                   f"the loop at line {loop.header} said to run {claim.count} more time(s){said}: "
                   f"{told} of its {loop.iterations} iterations come before this point, so "
                   f"{loop.iterations - told} remain")
        if right:
            self.fold = (loop, claim.end, last)
            self.floor = loop.iteration_ends[last - 1]
            self.move(self.floor - 1)

def check_steps(text: str, trace: str, code: str = "", funcname: str = "",
                rel_tol: float = 1e-6) -> StepCheck:
    """Read the steps ``text`` states and check each at its place in ``trace`` (see the
    module). ``code`` is the program (for blocks and loops); ``funcname`` is kept for callers
    that name the entry function."""
    model = parse_trace(trace)
    run = _Run(model, code, rel_tol)
    result = StepCheck(changes=sum(1 for c in model.changes if c.printed and not c.restated))
    walk = _Walk(run, result)
    for claim in read_claims(text):
        if walk.anchor is not None and claim.at >= walk.anchor_end:
            walk.anchor = None
        if isinstance(claim, Anchor):
            walk.anchor_at(claim)
        elif isinstance(claim, CallClaim):
            walk.call_at(claim)
        elif isinstance(claim, ValueClaim):
            walk.value(claim)
        elif isinstance(claim, ReturnClaim):
            walk.returned(claim)
        elif isinstance(claim, BranchClaim):
            walk.branch(claim)
        elif isinstance(claim, LoopCountClaim):
            walk.loop_count(claim)
    result.stated = len(walk.stated)
    return result
