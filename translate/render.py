"""The LLM-free translator: a snoop trace rendered as plain-English step-by-step reasoning.

Deterministic, free, and grounded line by line: every value it states comes from the trace,
and its final answer is the full returned value. It is the default when no model is given
(so a laptop without a GPU still makes real training data) and a baseline for the LLM.

It walks the trace's events (:mod:`translate.trace_model`) and writes one sentence per line
run, call and return, in the forms the step check reads (:mod:`translate.steps`): "Line N:"
first, "`name` becomes value" for a change, "we check `test`: it is true, so we enter its
block" for a branch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from trace_workers.records import parse_literal_output
from translate.digest import CallFold, Fold, LoopFold, digest_at, one_line
from translate.prompts import FINAL_ANSWER_MARK, is_python, shown_input
from translate.step_text import ordinal
from translate.trace_model import (
    CALL_EVENT,
    COMPREHENSION_EVENT,
    CONDITION,
    FOR,
    LINE,
    RESUME,
    RETURN_EVENT,
    START,
    UNTRACED,
    YIELD_EVENT,
    Event,
    block_ends,
    enters_block,
    parse_trace,
)

_SIMPLE_ASSIGN = re.compile(r"^([A-Za-z_]\w*)\s*=(?!=)\s*(.*)$")
_SKIP = re.compile(r"^(def |class |@|else\s*:|try\s*:|finally\s*:|except\b|pass\b)")


@dataclass
class _Frame:
    name: str
    known: set[str] = field(default_factory=set)


def _is_literal(text: str) -> bool:
    try:
        parse_literal_output(text.split("#", 1)[0])
    except ValueError:
        return False
    return True


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


class _Renderer:
    def __init__(self, source: str = "") -> None:
        self.block_ends = block_ends(source) if source else {}
        self.out: list[str] = []
        self.stack: list[_Frame] = []

    def say(self, text: str) -> None:
        self.out.append(text)

    def walk(self, events: list[Event], folds: Sequence[Fold] = ()) -> list[str]:
        starts = {fold.start: fold for fold in folds}
        number = -1
        while number + 1 < len(events):
            number += 1
            event = events[number]
            if (fold := starts.get(number)) is not None:
                self.pass_over(events[fold.start:fold.end])
                if isinstance(fold, LoopFold):
                    self.loop_fold(fold)
                    number = fold.end - 1
                else:
                    self.call_fold(fold)
                    number = fold.end  # its return is told with it
                continue
            if event.kind == LINE:
                self.line(event, _next_line(events, number))
            elif event.kind == CALL_EVENT:
                self.stack.append(_Frame(event.name))
                self.call(event)
            elif event.kind in (RETURN_EVENT, YIELD_EVENT):
                if self.stack:
                    self.stack.pop()
                if event.kind == YIELD_EVENT:
                    self.say(f"The generator `{event.name}` yields {event.value}.")
                else:
                    caller = f", and we are back in `{self.stack[-1].name}`" if self.stack else ""
                    self.say(f"`{event.name}` returns {event.value}{caller}.")
            elif event.kind == COMPREHENSION_EVENT:
                values = [f"`{name}` takes the values {shown}" for name, shown in event.values_of]
                over = f" ({_join(values)})" if values else ""
                self.say(f"A {event.comprehension} comprehension runs{over} and gives {event.value}.")
            elif event.kind == UNTRACED:
                self.say(f"Then {event.count} more call{'s are' if event.count > 1 else ' is'} "
                         "made here, which we do not follow step by step.")
            else:  # a generator starts or resumes
                self.stack.append(_Frame(event.name))
                self.say(f"The generator `{event.name}` {'starts' if event.kind == START else 'resumes'}.")
        return self.out

    def pass_over(self, events: list[Event]) -> None:
        """Events a fold tells in one step: the frames they open and close, and the names
        they set, are kept in step; nothing is said."""
        for event in events:
            if event.kind in (CALL_EVENT, START, RESUME):
                self.stack.append(_Frame(event.name))
            elif event.kind in (RETURN_EVENT, YIELD_EVENT):
                if self.stack:
                    self.stack.pop()
            if self.stack:
                self.stack[-1].known.update(c.name for c in event.changes)

    def loop_fold(self, fold: LoopFold) -> None:
        if loop := FOR.match(fold.code):
            which = f"the loop over `{loop.group(2)}`"
        elif condition := CONDITION.match(fold.code):
            which = f"the loop while `{condition.group(2)}`"
        else:
            which = "the loop"
        text = (f"Line {fold.header}: {which} runs {fold.count} more times, iterations "
                f"{fold.first} to {fold.last}")
        # one text line: "Line N:" and the fold's sentence end where the line does
        values = [f"`{name}` is {one_line(value)}" for name, value in fold.values]
        if values:
            text += f"; after the {ordinal(fold.last)} iteration, {_join(values)}"
        self.say(text + ".")

    def call_fold(self, fold: CallFold) -> None:
        if self.stack:
            self.stack.pop()
        caller = f", and we are back in `{self.stack[-1].name}`" if self.stack else ""
        args = [text for _, text in fold.args]
        shown = f"{fold.name.rsplit('.', 1)[-1]}({', '.join(args)})"
        if all(_is_literal(a) and "\n" not in a and "..." not in a for a in args) \
                and len(shown) <= 60:
            told = f"`{shown}` returns {one_line(fold.value)}"
        else:
            told = f"this call returns {one_line(fold.value)}"
        self.say(f"We do not follow this call step by step: {told}{caller}.")

    def call(self, event: Event) -> None:
        frame = self.stack[-1]
        args = [(change.name, change.text) for change in event.changes]
        if args:
            self.say(f"We call `{frame.name}` with {_join([f'`{n}` = {v}' for n, v in args])}.")
        else:
            self.say(f"We call `{frame.name}`.")
        frame.known.update(name for name, _ in args)

    def line(self, step: Event, next_step: Event | None) -> None:
        """One line run; ``next_step`` is the line that runs next if no call or return comes
        between (its place tells a branch's outcome)."""
        code = step.code.strip()
        frame = self.stack[-1] if self.stack else None
        same_frame = next_step is not None and next_step.depth == step.depth
        entered = same_frame and enters_block(step, next_step, self.block_ends)
        changes = self._changes(step, frame)
        # a comprehension's or a generator expression's own run of the line: no outcome of the
        # statement that holds it
        condition, loop = (None, None) if step.in_comprehension else (CONDITION.match(code),
                                                                      FOR.match(code))
        if loop:
            target, iterable = loop.group(1), loop.group(2)
            head = f"Line {step.lineno}: the loop over `{iterable}`"
            if entered or (changes and not same_frame):
                self.say(f"{head} takes the next item: {changes}." if changes else
                         f"{head} takes the next item; `{target}` keeps its value.")
            elif same_frame:
                self.say(f"{head} has no items left, so it ends." +
                         (f" Now {changes}." if changes else ""))
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
        assigned = _SIMPLE_ASSIGN.match(code)
        if assigned and frame is not None and _is_literal(assigned.group(2)):
            # snoop does not print `x = []` when the value reads as the source does
            frame.known.add(assigned.group(1))

    def _changes(self, step: Event, frame: _Frame | None) -> str:
        parts = []
        for change in step.changes:
            if not change.printed:
                continue
            if frame is not None and change.name not in frame.known and not change.name.startswith("len("):
                parts.append(f"`{change.name}` is set to {change.text}")
                frame.known.add(change.name)
            else:
                parts.append(f"`{change.name}` becomes {change.text}")
        return _join(parts)


def _next_line(events: list[Event], number: int) -> Event | None:
    """The line run after ``events[number]`` when no call, return or generator step comes
    between them (a comprehension's result does not count), and it is neither inside a
    comprehension nor the same run printed again: only then does its place tell a branch's
    outcome (else the outcome is told where the run is printed last)."""
    if events[number].in_comprehension:
        return None  # the comprehension's own frame runs it
    for event in events[number + 1:]:
        if event.kind == LINE:
            if event.in_comprehension or event.origin == events[number].origin:
                return None
            return event
        if event.kind != COMPREHENSION_EVENT:
            return None
    return None


def render_steps(trace: str, source: str = "", story_level: int = 0) -> list[str]:
    """The trace as a list of sentences, one per executed line (plus calls and returns).
    ``source`` (the program) tells which block a jump lands in; ``story_level`` (the trace
    stage's, :mod:`translate.digest`) which loops and calls are told in one step."""
    if story_level:
        told = digest_at(trace, source, story_level)
        return _Renderer(source).walk(told.trace.events, told.folds)
    return _Renderer(source).walk(parse_trace(trace).events)


def render_variable(row: dict) -> str:
    """A variable question, walked through the part of the trace that answers it."""
    answer = row["answer"]
    head = f"Let's follow the code step by step on the input {shown_input(row)}."
    return "\n".join([head, "", *render_steps(row["trace"], row.get("refcode") or ""), "",
                      f"So, to the question \"{row['question']}\": {answer}.", "",
                      f"{FINAL_ANSWER_MARK} {answer}"])


def render_output(row: dict) -> str:
    """The output task: the whole trace walked, and the returned value."""
    steps = render_steps(row["trace"], row.get("refcode") or "", row.get("story_level") or 0)
    if is_python(row):
        answer = row["returned"]  # the value's repr, checked by the trace stage
    else:
        answer = json.dumps(json.loads(row["returned"]), ensure_ascii=False)
    head = f"Let's follow the code step by step on the input {shown_input(row)}."
    return "\n".join([head, "", *steps, "", f"So the output is {answer}.", "",
                      f"{FINAL_ANSWER_MARK} {answer}"])
