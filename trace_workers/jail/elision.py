"""Trace-time elision: a run too long to record whole, recorded with the rest of its long loops
and its deep recursion left untraced (runs inside the jail, beside ``fast_snoop.py``).

Only a run whose dry run found it over the run budget is traced so (without elision it is a
``trace_limit`` reject); every other run is fast_snoop's, snoop's own output byte for byte.
This tracer is fast_snoop's with two kinds of span, each written as one line:

- **a loop span.** In a frame snoop traces (a generator's aside: a yield inside its loop would
  cut a span in two), once a loop run has had ``LOOP_HEAD`` iterations, the next iteration's
  body and everything after it up to the frame's first event outside the loop (the line
  after it, or the frame's return) is only counted::

      ~~~ loop at line 12: iterations 4 to 38 not traced (140 lines run)
      .......... i = 37
      .......... total = 703

  the span line, then each local of the frame whose repr changed over the span, as snoop
  prints a change: the values the loop leaves.
- **a call span.** A call of a program function (not a generator) that already has
  ``CALL_DEPTH`` traced calls open (recursion) prints its call and arguments as snoop does, then
  ``~~~ call not traced (N lines run)`` before its return.
- **untraced calls.** A frame (a comprehension's too) that has made ``CALLS_TRACED`` traced
  calls or generator resumes makes the rest untraced: a loop with no loop statement
  (``sum(f(x) for x in xs)``, ``[f(x) for x in xs]``, ``filter``). Before the frame's next
  event: ``~~~ 57000 more calls from here not traced``.

Inside a span nothing else is traced: a call there gets no trace function and runs at full
speed, and a generator resumed there keeps none. The trace model reads the span lines
(``translate.trace_model``); the digest always folds them, and the step check holds what is
said of them to the count and the values the span line states.
"""

from __future__ import annotations

import ast
import sys

from snoop.formatting import Event
from snoop.utils import ArgDefaultDict

from trace_workers.jail.fast_snoop import COMPREHENSIONS, RESUMABLE, FastFrameInfo, FastTracer
from trace_workers.jail.protocol import PROGRAM_FILENAME

LOOP_HEAD = 3  # whole iterations of a loop run traced before its span
CALL_DEPTH = 3  # traced calls of one function open at once before the next is a span
CALLS_TRACED = 8  # calls (and generator resumes) one frame makes traced; the rest untraced
_UNSPANNED = COMPREHENSIONS | {"<genexpr>"}


def loop_bodies(source: str) -> dict[int, tuple[int, int]]:
    """Each loop's header line -> (first, last) line of its body; loops whose body starts on
    the header's line are left out (their iterations cannot be told apart by line)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    bodies = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.While, ast.AsyncFor)) and node.body \
                and node.body[0].lineno > node.lineno:
            bodies[node.lineno] = (node.body[0].lineno,
                                   max(part.end_lineno or part.lineno for part in node.body))
    return bodies


class _Span:
    """What runs untraced: the rest of one loop run (``header`` set), or one call's body.
    Its frame's trace function while it lasts is :meth:`local`, a closure that only counts
    (it runs once a line of the loop: millions of times in a long run)."""

    __slots__ = ("frame", "header", "first", "iterations", "lines", "local")

    def __init__(self, frame, on_end, header: int = 0, last_line: int = 0, first: int = 0):
        self.frame, self.header, self.first = frame, header, first
        self.iterations = 0
        self.lines = 0
        hits = lines = 0
        at_header = False

        def loop_local(frame, event, arg):
            nonlocal hits, lines, at_header
            if event == "line":
                lineno = frame.f_lineno
                if header < lineno <= last_line:
                    lines += 1
                    at_header = False
                    return loop_local
                if lineno == header:
                    lines += 1
                    hits += 1
                    at_header = True
                    return loop_local
            elif event != "return":  # an exception inside the loop may be caught there
                return loop_local
            # the span started in an iteration's body; each header run that led into the
            # body started one more (the last led out of the loop when nothing ran after it)
            self.iterations, self.lines = 1 + hits - at_header, lines + 1
            return on_end(frame, event, arg)

        def call_local(frame, event, arg):
            nonlocal lines
            if event != "return":
                lines += event == "line"
                return call_local
            self.lines = lines
            return on_end(frame, event, arg)

        self.local = loop_local if header else call_local


def _untraced_call(frame, event, arg):
    """The global trace function while a span lasts: no call inside it is traced (a
    generator resumed there drops the trace function an earlier resume gave it)."""
    if frame.f_code.co_flags & RESUMABLE and frame.f_trace is not None:
        frame.f_trace = None


class ElidingFrameInfo(FastFrameInfo):
    """fast_snoop's frame state, with the runs of the loops the frame is in."""

    def __init__(self, frame):
        super().__init__(frame)
        self.previous_line = 0
        self.loop_counts: dict[int, int] = {}  # header -> iterations of its current run
        self.counted = False  # whether it counts in the open calls of its code
        self.calls_made = 0  # traced calls (and generator resumes) this frame made
        self.calls_untraced = 0  # those untraced since its last event


class ElidingTracer(FastTracer):
    """fast_snoop's tracer with loop and call spans (see the module). ``loops``: the
    program's :func:`loop_bodies`. ``spans`` counts what it left untraced."""

    def __init__(self, depth: int = 1, loops: dict[int, tuple[int, int]] | None = None):
        super().__init__(depth=depth)
        self.frame_infos = ArgDefaultDict(ElidingFrameInfo)
        self.loops = loops or {}
        self.span: _Span | None = None
        self.open_calls: dict[int, int] = {}  # id(code) -> its traced frames open now
        self.spans = {"loops": 0, "iterations": 0, "calls": 0}

    def trace(self, frame, event, arg):
        caller = info = None
        if event == "call":
            caller = self.frame_infos.get(frame.f_back)
            if caller is not None and caller.calls_made >= CALLS_TRACED:
                caller.calls_untraced += 1
                _untraced_call(frame, event, arg)
                return None
        else:
            info = self.frame_infos.get(frame)
            if info is not None and info.calls_untraced:
                self._write_untraced(info)
        if event == "line" and self.loops and self._loop_span_starts(frame):
            return self.span.local
        if event == "return" and info is not None and info.counted:
            self.open_calls[id(frame.f_code)] -= 1
        traced = super().trace(frame, event, arg)
        code = frame.f_code
        if caller is not None and traced is not None:
            caller.calls_made += 1
        if event == "call" and traced is not None and code.co_name not in _UNSPANNED \
                and code.co_filename == PROGRAM_FILENAME and not code.co_flags & RESUMABLE:
            info = self.frame_infos.get(frame)
            if info is not None:
                info.counted = True
                open_now = self.open_calls[id(code)] = self.open_calls.get(id(code), 0) + 1
                if open_now > CALL_DEPTH:
                    return self._start(_Span(frame, self._span_ends))
        return traced

    def _write_untraced(self, info) -> None:
        """Before a frame's next event: how many calls it made untraced since the last."""
        config = self.config
        count, info.calls_untraced = info.calls_untraced, 0
        config.write(config.formatter.format_lines(
            Event(info, "line", None, config.thread_local.depth),
            [f"~~~ {count} more call{'s' if count > 1 else ''} from here not traced"]))

    def _start(self, span: _Span):
        self.span = span
        sys.settrace(_untraced_call)
        return span.local

    def _span_ends(self, frame, event, arg):
        """The span's frame left it (``event``): its line, then the event as snoop tells it."""
        span, self.span = self.span, None
        sys.settrace(self.trace)
        self._end(frame, span)
        return self.trace(frame, event, arg)

    def _loop_span_starts(self, frame) -> bool:
        """At a line of a traced frame: note the loop runs it is in; when it is the first
        line of the body of an iteration past LOOP_HEAD, print what snoop prints with it but
        the line itself, and start a loop span."""
        code = frame.f_code
        info = self.frame_infos.get(frame)
        if info is None or code.co_filename != PROGRAM_FILENAME or code.co_name in _UNSPANNED \
                or code.co_flags & RESUMABLE:
            return False
        lineno, previous = frame.f_lineno, info.previous_line
        info.previous_line = lineno
        counts, loops = info.loop_counts, self.loops
        if counts:
            for header in [h for h in counts if not h <= lineno <= loops[h][1]]:
                del counts[header]
        body = loops.get(previous)
        if body is None or not body[0] <= lineno <= body[1]:
            return False
        count = counts[previous] = counts.get(previous, 0) + 1
        if count <= LOOP_HEAD:
            return False
        config = self.config
        depth = config.thread_local.depth
        if config.last_frame and config.last_frame is not frame:  # as snoop: the line again
            config.write(config.formatter.format_line_only(
                Event(info, "line", None, depth, line_no=info.last_line_no)))
        config.last_frame = frame
        current = Event(info, "line", None, depth)
        last_statement = current.source.statements[current.last_line_no]
        current.variables = info.update_variables(self.watch, config.watch_extras, "line",
                                                  self.variable_whitelist)
        lines = config.formatter.format_variables(current, last_statement)
        if lines:  # the changes the header made (the loop variable), without the body's line
            config.write(config.formatter.format_lines(current, lines))
        self._start(_Span(frame, self._span_ends, previous, body[1], count))
        return True

    def _end(self, frame, span: _Span) -> None:
        """Write the span's line and the changes it made (each one, unlike snoop, even where
        it reads as the last statement: the trace model adds no literal for a span)."""
        config = self.config
        info = self.frame_infos[frame]
        current = Event(info, "line", None, config.thread_local.depth)
        if span.header:
            last = span.first + span.iterations - 1
            head = (f"~~~ loop at line {span.header}: iterations {span.first} to {last} "
                    f"not traced ({span.lines} lines run)")
            self.spans["loops"] += 1
            self.spans["iterations"] += span.iterations
        else:
            head = f"~~~ call not traced ({span.lines} lines run)"
            self.spans["calls"] += 1
        lines = [head]
        variables = info.update_variables(self.watch, config.watch_extras, "line",
                                          self.variable_whitelist)
        source_line = current.source.lines[(span.header or current.line_no) - 1]
        dots = (source_line[:len(source_line) - len(source_line.lstrip())]
                .replace(" ", ".").replace("\t", "...."))
        for variable in variables:
            lines += config.formatter.format_variable(variable, dots, False)
        config.write(config.formatter.format_lines(current, lines))
