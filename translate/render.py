"""The LLM-free translator: a snoop trace rendered as plain-English step-by-step reasoning.

Deterministic, free, and grounded line by line: every value it states comes from the trace,
and its final answer is the full returned value. It is the default when no model is given
(so a laptop without a GPU still makes real training data) and a baseline for the LLM.

snoop's lines, as the trace stage writes them (indentation = call depth):

    >>> Call to f                       a call; the ``...... name = value`` lines that follow,
    ...... n = 3                        before the first source line, are its arguments
       12 |     total += n              a source line about to run (the program's line number)
    .......... total = 3                a value that changed (or a new local)
    List comprehension: / Iterating over <...> / Values of x: 1, 2 / Result: [...]
    >>> Start generator g / >>> Re-enter generator g / <<< Yield value from g: v
    <<< Return value from f: 6          the call returns

Anything else is the continuation of a multi-line value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from trace_workers.records import parse_literal_output
from translate.prompts import FINAL_ANSWER_MARK, is_python, shown_input

_SOURCE = re.compile(r"^\s*(\d+) \| (.*)$")
_CALL = re.compile(r"^\s*>>> Call to (.+?)(?: in File .*)?$")
_RETURN = re.compile(r"^\s*<<< Return value from (.+?): (.*)$")
_YIELD = re.compile(r"^\s*<<< Yield value from (.+?): (.*)$")
_GENERATOR = re.compile(r"^\s*>>> (Start|Re-enter) generator (.+)$")
_VALUES_OF = re.compile(r"^\s*\.{3,} Values of (.+?): (.*)$")
_ITERATING = re.compile(r"^\s*\.{3,} Iterating over (.*)$")
_ASSIGN = re.compile(r"^\s*\.{3,} (.+?) = (.*)$")
_COMPREHENSION = re.compile(r"^\s*(List|Dict|Set) comprehension:$")
_RESULT = re.compile(r"^\s*Result: (.*)$")
_CONDITION = re.compile(r"^(if|elif|while)\s+(.*):\s*(#.*)?$")
_FOR = re.compile(r"^(?:async\s+)?for\s+(.+?)\s+in\s+(.*):\s*(#.*)?$")
_SIMPLE_ASSIGN = re.compile(r"^([A-Za-z_]\w*)\s*=(?!=)\s*(.*)$")
_SKIP = re.compile(r"^(def |class |@|else\s*:|try\s*:|finally\s*:|except\b|pass\b)")


@dataclass
class _Frame:
    name: str
    known: set[str] = field(default_factory=set)


@dataclass
class _Step:
    """One source line and what changed while it ran."""

    lineno: int
    code: str
    indent: int
    depth: int
    changes: list[list[str]] = field(default_factory=list)  # [name, value]
    notes: list[str] = field(default_factory=list)


def _is_literal(text: str) -> bool:
    try:
        parse_literal_output(text.split("#", 1)[0])
    except ValueError:
        return False
    return True


def _indent(code: str) -> int:
    return len(code) - len(code.lstrip(" "))


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _block_ends(source: str) -> dict[int, int]:
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


class _Renderer:
    def __init__(self, source: str = "") -> None:
        self.block_ends = _block_ends(source) if source else {}
        self.out: list[str] = []
        self.stack: list[_Frame] = []
        self.pending: _Step | None = None  # the source line whose outcome is not known yet
        self.call_args: list[list[str]] | None = None  # [name, value] of a call's arguments
        self.comprehension: dict | None = None
        self.last_value: list[str] | None = None  # the [name, value] that continuation lines extend

    # -- output -------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self.out.append(text)

    def flush_call(self) -> None:
        if self.call_args is None:
            return
        frame = self.stack[-1]
        if self.call_args:
            args = _join([f"`{name}` = {value}" for name, value in self.call_args])
            self.say(f"We call `{frame.name}` with {args}.")
        else:
            self.say(f"We call `{frame.name}`.")
        frame.known.update(name for name, _ in self.call_args)
        self.call_args = None

    def flush_step(self, next_step: _Step | None) -> None:
        step, self.pending = self.pending, None
        if step is None:
            return
        code = step.code.strip()
        frame = self.stack[-1] if self.stack else None
        same_frame = next_step is not None and next_step.depth == step.depth
        entered = same_frame and self._inside(step, next_step)
        changes = self._changes(step, frame)
        condition, loop = _CONDITION.match(code), _FOR.match(code)
        if loop:
            target, iterable = loop.group(1), loop.group(2)
            if step.changes:
                self.say(f"Line {step.lineno}: the loop over `{iterable}` takes the next item: {changes}.")
            elif entered:
                self.say(f"Line {step.lineno}: the loop over `{iterable}` takes the next item; "
                         f"`{target}` keeps its value.")
            elif same_frame:
                self.say(f"Line {step.lineno}: the loop over `{iterable}` has no items left, so it ends.")
            else:
                self.say(f"Line {step.lineno}: we reach the loop over `{iterable}`.")
        elif condition:
            keyword, test = condition.group(1), condition.group(2)
            if keyword == "while":
                outcome = ("it holds, so the loop body runs" if entered else
                           "it no longer holds, so the loop ends" if same_frame else "")
            else:
                outcome = ("it is true, so we enter its block" if entered else
                           "it is false, so we skip its block" if same_frame else "")
            text = f"Line {step.lineno}: we check `{test}`"
            text += f": {outcome}." if outcome else "."
            if changes:
                text += f" Now {changes}."
            self.say(text)
        elif code.startswith("return"):
            expression = code[len("return"):].strip()
            self.say(f"Line {step.lineno}: we return `{expression}`." if expression else
                     f"Line {step.lineno}: we return.")
        elif _SKIP.match(code):
            if changes:
                self.say(f"Line {step.lineno}: now {changes}.")
        else:
            text = f"Line {step.lineno}: `{code}`"
            text += f", so {changes}." if changes else "."
            self.say(text)
        for note in step.notes:
            self.say(note)
        assigned = _SIMPLE_ASSIGN.match(code)
        if assigned and frame is not None and _is_literal(assigned.group(2)):
            # snoop does not print `x = []` when the value reads as the source does
            frame.known.add(assigned.group(1))

    def _inside(self, step: _Step, next_step: _Step) -> bool:
        """Whether the next line run is in the block that ``step`` opens (the body of an if,
        not its else; the body of a loop)."""
        end = self.block_ends.get(step.lineno)
        if end is not None:
            return step.lineno < next_step.lineno <= end
        return next_step.indent > step.indent  # no source: judge by indentation

    def _changes(self, step: _Step, frame: _Frame | None) -> str:
        parts = []
        for name, value in step.changes:
            if frame is not None and name not in frame.known and not name.startswith("len("):
                parts.append(f"`{name}` is set to {value}")
                frame.known.add(name)
            else:
                parts.append(f"`{name}` becomes {value}")
        return _join(parts)

    # -- input --------------------------------------------------------------------------------
    def line(self, raw: str) -> None:
        if not raw.strip():
            return
        if m := _SOURCE.match(raw):
            self.flush_call()
            step = _Step(int(m.group(1)), m.group(2), _indent(m.group(2)), len(self.stack))
            self.flush_step(step)
            self.pending = step
            self.last_value = None
        elif m := _CALL.match(raw):
            self.flush_call()
            self.flush_step(None)
            self.stack.append(_Frame(m.group(1)))
            self.call_args = []
            self.last_value = None
        elif m := _RETURN.match(raw):
            self.flush_call()
            self.flush_step(None)
            name = m.group(1)
            if self.stack:
                self.stack.pop()
            caller = f", and we are back in `{self.stack[-1].name}`" if self.stack else ""
            self.say(f"`{name}` returns {m.group(2)}{caller}.")
            self.last_value = None
        elif m := _YIELD.match(raw):
            self.flush_step(None)
            if self.stack:
                self.stack.pop()
            self.say(f"The generator `{m.group(1)}` yields {m.group(2)}.")
        elif m := _GENERATOR.match(raw):
            self.flush_call()
            self.flush_step(None)
            self.stack.append(_Frame(m.group(2)))
            self.say(f"The generator `{m.group(2)}` {'starts' if m.group(1) == 'Start' else 'resumes'}.")
        elif m := _COMPREHENSION.match(raw):
            self.comprehension = {"kind": m.group(1).lower(), "values": []}
        elif self.comprehension is not None and (m := _VALUES_OF.match(raw)):
            self.comprehension["values"].append(f"`{m.group(1)}` takes the values {m.group(2)}")
            self.last_value = None
        elif self.comprehension is not None and _ITERATING.match(raw):
            pass  # "Iterating over <list_iterator object>" says nothing a reader needs
        elif self.comprehension is not None and (m := _RESULT.match(raw)):
            comp = self.comprehension
            over = f" ({_join(comp['values'])})" if comp["values"] else ""
            note = f"A {comp['kind']} comprehension runs{over} and gives {m.group(1)}."
            (self.pending.notes if self.pending else self.out).append(note)
            self.comprehension = None
        elif m := _ASSIGN.match(raw):
            change = [m.group(1), m.group(2)]
            if self.call_args is not None:
                self.call_args.append(change)
            elif self.pending is not None:
                self.pending.changes.append(change)
            self.last_value = change
        elif self.last_value is not None:  # continuation of a multi-line value
            self.last_value[1] += "\n" + raw.strip()

    def finish(self) -> list[str]:
        self.flush_call()
        self.flush_step(None)
        return self.out


def render_steps(trace: str, source: str = "") -> list[str]:
    """The trace as a list of sentences, one per executed line (plus calls and returns).
    ``source`` (the program) tells which block a jump lands in."""
    renderer = _Renderer(source)
    for raw in trace.split("\n"):
        renderer.line(raw)
    return renderer.finish()


def render_reasoning(item: dict) -> str:
    """The renderer's reasoning for one task item, ending in a ``Final answer:`` line (its
    task says how: :mod:`translate.tasks`)."""
    from translate.tasks import task_of  # not at the top: the tasks import this module

    return task_of(item).render(item)


def render_variable(row: dict) -> str:
    """A variable question, walked through the part of the trace that answers it."""
    answer = row["answer"]
    head = f"Let's follow the code step by step on the input {shown_input(row)}."
    return "\n".join([head, "", *render_steps(row["trace"], row.get("refcode") or ""), "",
                      f"So, to the question \"{row['question']}\": {answer}.", "",
                      f"{FINAL_ANSWER_MARK} {answer}"])


def render_output(row: dict) -> str:
    """The output task: the whole trace walked, and the returned value."""
    steps = render_steps(row["trace"], row.get("refcode") or "")
    if is_python(row):
        answer = row["returned"]  # the value's repr, checked by the trace stage
    else:
        answer = json.dumps(json.loads(row["returned"]), ensure_ascii=False)
    head = f"Let's follow the code step by step on the input {shown_input(row)}."
    return "\n".join([head, "", *steps, "", f"So the output is {answer}.", "",
                      f"{FINAL_ANSWER_MARK} {answer}"])
