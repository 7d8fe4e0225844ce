"""One model of a snoop trace: its text read once into typed events in run order.

snoop's lines, as the trace stage writes them (indentation = call depth):

    >>> Call to f                       a call; the ``...... name = value`` lines that follow,
    ...... n = 3                        before the first source line, are its arguments
       12 |     total += n              a source line about to run (the program's line number)
    .......... total = 3                a value that changed (or a new local)
    List comprehension: / Iterating over <...> / Values of x: 1, 2 / Result: [...]
    >>> Start generator g / >>> Re-enter generator g / <<< Yield value from g: v
    <<< Return value from f: 6          the call returns

A run traced with elision (``trace_workers.jail.elision``: over the run budget whole) also has

    ~~~ loop at line 5: iterations 4 to 38 not traced (140 lines run)   the rest of a loop run;
    .......... total = 703                                             the values it leaves
    ~~~ call not traced (12 lines run)      a call's steps, between its arguments and return
    ~~~ 570 more calls from here not traced                 calls its frame made untraced

Anything else is the continuation of a multi-line value.

snoop prints a frame's current line again when the frame resumes after another frame (a call
returning, a comprehension's result): that is not a new run of the line, and such an event is
marked ``reprint`` with ``origin`` the run it continues. A variable assigned a literal that
reads as its source (``total = 0``) is not printed by snoop; the model adds that change
(``printed=False``) so that a reasoning stating it can be checked.

The renderer (:mod:`translate.render`), the variable questions (:mod:`translate.variable`) and
the step check (:mod:`translate.steps`) all read this model; none of them reads snoop's text.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

SOURCE = re.compile(r"^\s*(\d+) \| (.*)$")
CALL = re.compile(r"^\s*>>> Call to (.+?)(?: in File .*)?$")
RETURN = re.compile(r"^\s*<<< Return value from (.+?): (.*)$")
YIELD = re.compile(r"^\s*<<< Yield value from (.+?): (.*)$")
GENERATOR = re.compile(r"^\s*>>> (Start|Re-enter) generator (.+)$")
VALUES_OF = re.compile(r"^\s*\.{3,} Values of (.+?): (.*)$")
ITERATING = re.compile(r"^\s*\.{3,} Iterating over (.*)$")
ASSIGN = re.compile(r"^\s*\.{3,} (.+?) = (.*)$")
COMPREHENSION = re.compile(r"^\s*(List|Dict|Set) comprehension:$")
RESULT = re.compile(r"^\s*Result: (.*)$")
# a span the tracer left untraced (trace_workers.jail.elision): the rest of a loop run, or a
# call's steps; the changes printed after it are the values it leaves
LOOP_SPAN = re.compile(r"^\s*~~~ loop at line (\d+): iterations (\d+) to (\d+) not traced")
CALL_SPAN = re.compile(r"^\s*~~~ call not traced")
UNTRACED_CALLS = re.compile(r"^\s*~~~ (\d+) more calls? from here not traced")

CONDITION = re.compile(r"^(if|elif|while)(?:\s+|(?=\())(.*):\s*(#.*)?$")
FOR = re.compile(r"^(?:async\s+)?for\s+(.+?)\s+in\s+(.*):\s*(#.*)?$")
_LITERAL_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)\s*(.+?)\s*(#.*)?$")
_NAME = re.compile(r"[A-Za-z_]\w*")

# event kinds
CALL_EVENT, LINE, RETURN_EVENT, YIELD_EVENT, START, RESUME, COMPREHENSION_EVENT, SPAN = (
    "call", "line", "return", "yield", "start", "resume", "comprehension", "span")
UNTRACED = "untraced"  # calls a frame made that the tracer did not follow (``count`` of them)


@dataclass(slots=True)
class Change:
    """A value the trace shows a variable taking: printed by snoop after a call (an argument)
    or a line (a change), or a literal assignment snoop leaves out (``printed`` False)."""

    name: str
    text: str  # the value as printed (lines of a multi-line value joined by "\n")
    position: int  # its place in the run: events and changes share one count
    frame: int
    owner: int  # the event it was printed after (a call or a line), -1 if none
    run: int = -1  # the run of its frame's current line when it was printed, -1 if none
    printed: bool = True
    in_comprehension: bool = False
    # printed when a generator is re-entered: its locals again, not a change
    restated: bool = False


@dataclass(slots=True)
class Event:
    kind: str
    position: int
    frame: int  # the frame it runs in (a call, a return: the callee's)
    depth: int  # open calls and generators, the comprehension blocks not counted
    at: int  # its line in the trace's text
    lineno: int = 0  # a line: the program's line number; a loop span: its loop's line
    code: str = ""  # a line: its source as printed
    name: str = ""  # a call, return, yield or generator: the function's name
    value: str = ""  # a return or yield: the value; a comprehension: its result
    reprint: bool = False  # a line snoop printed again when its frame resumed
    origin: int = -1  # a line: the run it belongs to (itself, or the one a reprint continues)
    in_comprehension: bool = False  # a line inside a comprehension's block
    comprehension: str = ""  # a comprehension: "list", "dict" or "set"
    values_of: list[tuple[str, str]] = field(default_factory=list)  # a comprehension's
    changes: list[Change] = field(default_factory=list)  # printed after it (args, changes)
    count: int = 0  # a loop span: the iterations it left untraced; untraced: the calls


@dataclass
class Trace:
    """A trace's events in run order (see the module); ``lines`` is the text split in lines."""

    lines: list[str]
    events: list[Event]
    changes: list[Change]
    frame_names: dict[int, str]
    entry_end: int = -1  # the trace line where the outermost frame last returns or yields

    def line_events(self) -> list[Event]:
        return [e for e in self.events if e.kind == LINE]


def parse_trace(trace: str) -> Trace:
    """Read snoop's text into events (see the module)."""
    lines = trace.split("\n")
    events: list[Event] = []
    changes: list[Change] = []
    frame_names: dict[int, str] = {}
    stack: list[int] = []  # open frames (calls and generators)
    current: list[Event | None] = []  # each open frame's current line run
    suspended: dict[str, int] = {}  # a generator's frame, by name, while it is suspended
    blocks: list[int] = [0]  # open comprehension blocks, per open frame (the last: the top)
    comprehensions: list[Event] = []  # the open comprehension blocks, innermost last
    owner: Event | None = None  # the call or line the next change belongs to
    last: Change | None = None  # the change continuation lines extend
    resumed = False
    restating = False  # the lines after "Re-enter generator" restate the generator's locals
    entry_end = -1
    position = 0

    def add(event: Event) -> Event:
        nonlocal position
        event.position = position
        position += 1
        events.append(event)
        return event

    def frame() -> int:
        return stack[-1] if stack else -1

    def close(run: Event | None) -> None:
        """``total = 0`` holds 0 though snoop prints nothing for it: once its line's changes
        are all read, the change is added (``printed`` False)."""
        nonlocal position
        if run is None or run.kind != LINE or run.reprint or run.in_comprehension:
            return
        plain = _LITERAL_ASSIGN.match(run.code)
        if plain is None or any(c.name == plain.group(1) for c in run.changes):
            return
        if not _is_literal(plain.group(2)):
            return
        change = Change(plain.group(1), plain.group(2), position, run.frame, run.position,
                        run.position, printed=False)
        position += 1
        run.changes.append(change)
        changes.append(change)

    for at, raw in enumerate(lines):
        # each kind of line starts with its own character: one test before its patterns
        first = raw.lstrip()[:1]
        if first.isdigit() and (m := SOURCE.match(raw)):
            close(owner)
            lineno, code = int(m.group(1)), m.group(2)
            run = current[-1] if current else None
            # a generator expression's frame runs its line as a comprehension does (the line
            # of the statement that holds it): not a run of that statement
            event = Event(LINE, 0, frame(), len(stack), at, lineno, code,
                          in_comprehension=blocks[-1] > 0
                          or frame_names.get(frame(), "").endswith("<genexpr>"))
            if not blocks[-1] and resumed and run is not None and run.lineno == lineno:
                event.reprint, event.origin = True, run.origin
            add(event)
            if not event.reprint:
                event.origin = event.position
                if not blocks[-1] and current:
                    current[-1] = event
            owner, last, resumed, restating = event, None, False, False
        elif first == ">" and ((m := CALL.match(raw)) or (m := GENERATOR.match(raw))):
            close(owner)
            name = m.group(1) if m.re is CALL else m.group(2)
            kind = CALL_EVENT if m.re is CALL else (START if m.group(1) == "Start" else RESUME)
            number = suspended.pop(name, None) if kind == RESUME else None
            if number is None:
                number = len(frame_names)
                frame_names[number] = name
            stack.append(number)
            blocks.append(0)
            current.append(None)
            event = add(Event(kind, 0, number, len(stack), at, name=name))
            owner = event if kind == CALL_EVENT else None
            last, resumed, restating = None, False, kind == RESUME
        elif first == "<" and ((m := RETURN.match(raw)) or (m := YIELD.match(raw))):
            close(owner)
            kind = RETURN_EVENT if m.re is RETURN else YIELD_EVENT
            add(Event(kind, 0, frame(), len(stack), at, name=m.group(1), value=m.group(2)))
            if len(stack) == 1:
                entry_end = at
            if stack:
                number = stack.pop()
                if len(blocks) > 1:
                    blocks.pop()
                current.pop()
                if kind == YIELD_EVENT:
                    suspended[m.group(1)] = number
            owner, last, resumed = None, None, True
        elif first in "LDS" and (m := COMPREHENSION.match(raw)):
            blocks[-1] += 1
            comprehensions.append(Event(COMPREHENSION_EVENT, 0, frame(), len(stack), at,
                                        comprehension=m.group(1).lower()))
            last = None
        elif first == "." and (m := VALUES_OF.match(raw)):
            if comprehensions:
                comprehensions[-1].values_of.append((m.group(1), m.group(2)))
            last = None
        elif first == "." and ITERATING.match(raw):
            last = None
        elif first == "R" and (m := RESULT.match(raw)):
            if comprehensions:
                comprehension = comprehensions.pop()
                comprehension.value, comprehension.at = m.group(1), at
                add(comprehension)
            blocks[-1] = max(0, blocks[-1] - 1)
            resumed, last = True, None
        elif first == "~" and ((m := LOOP_SPAN.match(raw)) or CALL_SPAN.match(raw)):
            close(owner)
            event = Event(SPAN, 0, frame(), len(stack), at)
            if m:
                event.lineno = int(m.group(1))
                event.count = max(0, int(m.group(3)) - int(m.group(2)) + 1)
            add(event)
            event.origin = event.position
            if current:
                current[-1] = event
            owner, last, resumed, restating = event, None, False, False
        elif first == "~" and (m := UNTRACED_CALLS.match(raw)):
            close(owner)
            add(Event(UNTRACED, 0, frame(), len(stack), at, count=int(m.group(1)),
                      in_comprehension=blocks[-1] > 0))
            last = None
        elif first == "." and (m := ASSIGN.match(raw)):
            run = current[-1] if current else None
            last = Change(m.group(1), m.group(2), position, frame(),
                          owner.position if owner else -1, run.position if run else -1,
                          in_comprehension=blocks[-1] > 0, restated=restating)
            position += 1
            changes.append(last)
            if owner is not None:
                owner.changes.append(last)
        elif last is not None and raw.strip():
            last.text += "\n" + raw.strip()  # a value printed over several lines
    close(owner)
    return Trace(lines, events, changes, frame_names, entry_end)


def _is_literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def block_ends(source: str) -> dict[int, int]:
    """For each line that opens a block (ends with ':'), the last line number of its body."""
    lines = source.split("\n")
    ends: dict[int, int] = {}
    for number, text in enumerate(lines, 1):
        code = text.split("#", 1)[0].rstrip()
        if not code.endswith(":"):
            continue
        indent, end = _indent(text), number
        for later in range(number + 1, len(lines) + 1):
            body = lines[later - 1]
            if not body.strip() or body.strip().startswith("#"):
                continue
            if _indent(body) <= indent:
                break
            end = later
        ends[number] = end
    return ends


def _indent(code: str) -> int:
    return len(code) - len(code.lstrip(" "))


def enters_block(event: Event, following: Event, ends: dict[int, int]) -> bool:
    """Whether ``following`` (the next line its frame ran) is in the block ``event``'s line
    opens: the body of an if, not its else; the body of a loop. Without the program's source,
    judged by indentation."""
    if following.kind == SPAN:
        return True  # a loop span follows the header run that leads into its iterations
    end = ends.get(event.lineno)
    if end is not None:
        return event.lineno < following.lineno <= end
    return _indent(following.code) > _indent(event.code)


def is_name(text: str) -> bool:
    return _NAME.fullmatch(text) is not None


@dataclass(slots=True)
class LoopRun:
    """One run of a loop in one frame: ``iterations`` is how many times the header led into
    the body; iteration k (1-based) ends at ``iteration_ends[k - 1]``, the position of the
    header run that starts the next one (the last: the first line after the loop, or its
    frame's end)."""

    frame: int
    header: int  # the loop's line
    start: int  # position of its first header run
    end: int  # position of the first line its frame runs after it (or its frame's end)
    iterations: int
    iteration_ends: list[int]
    # iterations whose ends the trace does not hold (inside a loop span: first, last), the
    # span's last iteration excluded (it ends where the span's values are printed)
    untraced: tuple[int, int] = (0, -1)
    spanned: bool = False  # whether it ends in a loop span (its last iterations untraced)

    def traced_end(self, k: int) -> bool:
        """Whether the trace holds the values where iteration ``k`` ends."""
        return not self.untraced[0] <= k <= self.untraced[1]

    def iteration_start(self, k: int) -> int:
        """Position of the header run that leads into iteration ``k`` (1-based)."""
        return self.start if k == 1 else self.iteration_ends[k - 2]

    def told(self, position: int) -> int:
        """How many iterations lie before ``position`` or hold it: at the header run that
        leads into iteration k, k - 1; inside iteration k's body, k."""
        if position <= self.start:
            return 0
        return 1 + sum(1 for end in self.iteration_ends[:self.iterations - 1] if end < position)


def program_loops(code: str) -> list[tuple[int, int, int]]:
    """(header line, first and last line of the body) of every loop in the program."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return [(node.lineno, node.body[0].lineno, max(b.end_lineno or b.lineno for b in node.body))
            for node in ast.walk(tree)
            if isinstance(node, (ast.For, ast.While, ast.AsyncFor)) and node.body]


def frame_lines(trace: Trace) -> dict[int, list[Event]]:
    """Each frame's line runs in order (reprints and comprehension blocks left out), with
    its loop spans (which stand for the rest of a loop run)."""
    lines: dict[int, list[Event]] = {}
    for event in trace.events:
        if (event.kind == LINE and not event.reprint and not event.in_comprehension) or (
                event.kind == SPAN and event.lineno):
            lines.setdefault(event.frame, []).append(event)
    return lines


def loop_runs(trace: Trace, loops: list[tuple[int, int, int]],
              lines_of_frames: dict[int, list[Event]] | None = None) -> list[LoopRun]:
    """Every run of every loop, in each frame, in run order (``loops``: program_loops)."""
    ends = {event.frame: event.position for event in trace.events
            if event.kind in (RETURN_EVENT, YIELD_EVENT)}
    runs: list[LoopRun] = []
    for frame, lines in (lines_of_frames if lines_of_frames is not None
                         else frame_lines(trace)).items():
        for header, first, last in loops:
            active: LoopRun | None = None
            previous = None
            for event in lines:
                lineno = event.lineno
                if event.kind == SPAN and lineno == header:
                    if active is not None and event.count:
                        active.spanned = True
                        # the header run before it led into the first of them; the last
                        # ends where the span's values are printed (the next line or return)
                        active.untraced = (active.iterations + 1,
                                           active.iterations + event.count - 1)
                        active.iterations += event.count
                        active.iteration_ends += [event.position] * (event.count - 1)
                    previous = event
                    continue
                if lineno == header:
                    if active is None:
                        active = LoopRun(frame, header, event.position, -1, 0, [])
                    elif previous is not None and previous.lineno != header:
                        active.iteration_ends.append(event.position)
                elif active is not None and first <= lineno <= last:
                    if previous is not None and previous.lineno == header:
                        active.iterations += 1
                elif active is not None and not header < lineno <= last:
                    active.end = event.position
                    if len(active.iteration_ends) < active.iterations:
                        active.iteration_ends.append(event.position)
                    runs.append(active)
                    active = None
                previous = event
            if active is not None:
                active.end = ends.get(frame, 1 << 60)
                if len(active.iteration_ends) < active.iterations:
                    active.iteration_ends.append(active.end)
                runs.append(active)
    runs.sort(key=lambda run: run.start)
    return runs
