"""The dry run and its line floor (runs inside the jail).

Before a traced run, a child runs the call counting the lines snoop would print (``TraceFloor``,
about 1 us an event) within a share of the time limit: a run far over the line budget is
settled in one fork, without formatting a trace that would be thrown away.
"""

from __future__ import annotations

import inspect
import linecache
import os
import re
import signal
import sys
import time

from trace_workers.jail import tracing
from trace_workers.jail.protocol import PROGRAM_FILENAME, OutputSink, send

# snoop does not count comprehension frames as calls when it measures depth (generator
# expressions do count); the floor counts no line of either kind of frame (snoop prints a
# comprehension as a summary, and a floor may always leave lines out)
COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>"})
UNCOUNTED_FRAMES = COMPREHENSIONS | {"<genexpr>"}
RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
# a dry run gets this share of the time limit: past it, it is abandoned and the real run
# decides (a slow program with a short trace must not pay its run time twice)
DRY_RUN_SHARE = 0.1
# ...unless, a little before that, it is inside a comprehension of a frame that snoop traces:
# the dry run runs those at full speed, snoop pays every one of their steps, so the real run
# would cost many times more. The child then asks for the whole limit with this line.
MORE_TIME = b"+\n"
# when the child looks at its stack: at this share of its own share, in CPU time (SIGPROF:
# a program's own SIGALRM handler, or a sleep, must not see or trigger the check)
MORE_TIME_CHECK = 0.7


def run_dry(function, args: list, kwargs: dict, depth: int, limits: dict, result_fd: int,
             marks: dict) -> None:
    """The dry run, in this child (which it spoils for a real run); never returns. Sends
    status "trace_limit" (dry_run "over_budget") the moment snoop's trace surely passes the
    line budget, else status "fits" (whatever the call did: the real run, in a fresh child,
    decides).

    snoop prints at least one line per 'line' event of each frame it traces, so the line
    events of those frames are a lower bound on the trace's length. Counting them with a
    trivial trace function costs ~1 us an event against snoop's ~100 us, so a runaway program
    is stopped after a few milliseconds instead of after 300 formatted lines. Frames are
    chosen as snoop chooses them (target code, within ``depth`` calls, comprehensions
    skipped), never more, so the bound holds.
    """
    def over_budget(detail: str) -> None:
        sys.settrace(None)
        signal.setitimer(signal.ITIMER_PROF, 0)  # no MORE_TIME inside the message
        marks["dry_run"] = time.monotonic()
        send(result_fd, {**tracing.current_buffer.notes, "status": "trace_limit",
                          "dry_run": "over_budget", "detail": detail, "marks": marks})
        os._exit(0)

    budget = limits["max_trace_lines"]
    sys.stdout = sys.stderr = OutputSink(result_fd, limits["max_stdout_bytes"], on_overflow=(
        lambda: over_budget(f"a dry run printed more than {limits['max_stdout_bytes']} bytes")))
    floor = TraceFloor(function.__code__, depth, "".join(linecache.getlines(PROGRAM_FILENAME)),
                       budget, lambda: over_budget(f"a dry run passed {budget} traced lines"))

    def at_check(signum, frame) -> None:
        if _in_traced_comprehension(frame, floor.snapshots):
            try:
                os.write(result_fd, MORE_TIME)
            except OSError:  # the program closed it: the dry run keeps its share
                pass

    signal.signal(signal.SIGPROF, at_check)
    signal.setitimer(signal.ITIMER_PROF, limits["timeout_s"] * DRY_RUN_SHARE * MORE_TIME_CHECK)
    try:
        sys.settrace(floor.chooser)
        function(*args, **kwargs)
    except BaseException:
        pass
    finally:
        sys.settrace(None)
        signal.setitimer(signal.ITIMER_PROF, 0)
    marks["dry_run"] = time.monotonic()
    try:
        send(result_fd, {**tracing.current_buffer.notes, "status": "fits", "dry_run": "fits",
                          "marks": marks})
    finally:
        os._exit(0)


def _in_traced_comprehension(frame, traced_frames) -> bool:
    """Is ``frame``, or a frame below it, a comprehension of the program whose enclosing
    function the dry run counts (as snoop would trace it)?"""
    while frame is not None:
        code = frame.f_code
        if code.co_name in COMPREHENSIONS and code.co_filename == PROGRAM_FILENAME:
            owner = frame.f_back
            while owner is not None and owner.f_code.co_name in COMPREHENSIONS:
                owner = owner.f_back
            if owner in traced_frames:
                return True
        frame = frame.f_back
    return False


def _plain(value) -> bool:
    """Values whose repr, as snoop prints it, differs whenever the value does."""
    kind = type(value)
    return ((kind is int and -10**15 < value < 10**15) or kind is bool
            or (kind is float and value == value) or (kind is str and len(value) <= 30))


def _surely_new_repr(old, new) -> bool:
    if old is new or not (_plain(old) and _plain(new)):
        return False
    return type(old) is not type(new) or old != new


ASSIGNED_OR_DEFINED = re.compile(r"^[ \t]*(?:(\w+) = |(?:async[ \t]+)?def[ \t]+(\w+))", re.M)


class TraceFloor:
    """Counts lines that snoop surely prints for a call, with a trace function ~100x cheaper
    than snoop's: a lower bound of the trace's length, never more.

    Per event of a frame snoop would trace (comprehensions and generator expressions left
    out): a call prints ">>> Call to" and the ``def`` line, a line event its source line, a
    return its "<<< Return" line; an event in another frame than the last one also reprints
    that frame's line; a new local prints a line, and so does a local whose repr surely
    changed. snoop leaves a variable's line out when it reads exactly like the statement that
    just ran (``total = 0``) or names the function just defined, so names that some line
    assigns as ``name = ...`` or defines are never counted.
    """

    def __init__(self, target, depth: int, source: str, budget: int, on_budget):
        self.target, self.depth, self.budget, self.on_budget = target, depth, budget, on_budget
        self.count = 0
        self.last_frame = None
        self.snapshots: dict = {}
        self.unsure = frozenset(
            name for pair in ASSIGNED_OR_DEFINED.findall(source) for name in pair if name)

    def _variables(self, current: dict, previous: dict | None) -> int:
        unsure, lines = self.unsure, 0
        for name, value in current.items():
            if name in unsure:
                continue
            if previous is None or name not in previous or _surely_new_repr(previous[name], value):
                lines += 1
        return lines

    def local(self, frame, event, arg):
        if event == "call":
            current = frame.f_locals
            self.count += 2 + self._variables(current, None)
            self.snapshots[frame] = dict(current)
        else:  # line, return, exception ("!!! ..."): the line and a switch of frame
            self.count += 1 + (self.last_frame is not None and self.last_frame is not frame)
            if event == "line":
                current = frame.f_locals
                self.count += self._variables(current, self.snapshots.get(frame))
                self.snapshots[frame] = dict(current)
            elif event == "return":
                self.snapshots.pop(frame, None)
        self.last_frame = frame
        if self.count >= self.budget:
            self.on_budget()
        return self.local

    def chooser(self, frame, event, arg):
        code = frame.f_code
        if code.co_name in UNCOUNTED_FRAMES:
            return None
        caller = frame.f_back
        # a caller the floor does not count is no nearer the target than this frame (as in
        # fast_snoop's FastTracer.trace): no walk for recursion below the depth limit
        if (code is self.target or caller is None or caller in self.snapshots
                or caller.f_code.co_name in UNCOUNTED_FRAMES) and self._counted(frame):
            return self.local(frame, event, arg)
        if code.co_flags & RESUMABLE and frame.f_trace is not None:
            frame.f_trace = None  # a generator resumed from elsewhere (see fast_snoop)
        return None

    def _counted(self, frame) -> bool:
        candidate, steps = frame, 0
        while True:
            code = candidate.f_code
            if code.co_filename != PROGRAM_FILENAME:
                return False
            if code.co_name in COMPREHENSIONS:
                candidate = candidate.f_back
                if candidate is None:
                    return False
                continue
            steps += 1
            if code is self.target:
                return True
            candidate = candidate.f_back
            if steps >= self.depth or candidate is None:
                return False
