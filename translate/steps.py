"""Checking every step of a reasoning against the trace, not only its final answer.

A translation that reaches the right answer through a wrong step ("`total` becomes 12" where
the program held 11, a loop said to run three times that ran four) teaches the very error the
method exists to remove. The prompt asks the model to write each value change in a fixed,
natural form ("`name` = value", "`name` becomes value", "`name` is set to value") and the
number of times a loop runs as "runs N times"; this module reads those statements, in order,
and compares them with the trace:

- a value step is *right* when the variable held that value (compared as Python values, floats
  within the answer's tolerance) at that point of the run or later: each variable's values,
  in every frame the trace shows, form a history, and a step must not go back in it (a value
  the variable held only before the previous step's is out of order); *wrong* when it never
  held it there;
- a loop count is right when some loop of the entry function ran that many times in one of
  its runs (iterations = times the loop's header led into its body);
- a statement about a name the trace does not show, or a value that is not a literal ("`s`
  becomes the reversed string"), is not checked.

``coverage`` is the share of the trace's value changes that right steps state.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from trace_workers.canonical import python_values_match, values_match
from trace_workers.records import parse_literal_output
from translate.render import _ASSIGN, _CALL, _GENERATOR, _RETURN, _SOURCE, _YIELD

# "`total` becomes", "total =", "`x` is set to" (not "==", "<=", ">=", "!=", "+="): the verb
# is found first (verbs are rare in a text, names are everywhere), then the name before it
_VERB = re.compile(r"(?<![=<>!+\-*/%&|^@:])=(?!=)|\b(?:becomes|is set to|is now|changes to|"
                   r"is updated to|is assigned)\b", re.IGNORECASE)
_NAME_BEFORE = re.compile(r"(?:`([A-Za-z_]\w*)`|(?<![\w.`])([A-Za-z_]\w*))\s*$")
# a source line that assigns a literal: snoop prints no value for it when the value reads
# as the source does (``total = 0``), yet the variable holds it
_LITERAL_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*=(?!=)\s*(.+?)\s*(#.*)?$")
_NAME = re.compile(r"[A-Za-z_]\w*")
_COUNT_WORDS = {"once": 1, "twice": 2, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_LOOP_COUNT = re.compile(
    r"\b(?:loop|body)\b[^.\n]{0,80}?\b(?:runs|iterates|repeats|executes|goes round|goes around|"
    r"ran|iterated|repeated|executed)\s+(\d+|once|twice|one|two|three|four|five|six|seven|eight|"
    r"nine|ten)(?:\s+times?)?\b", re.IGNORECASE)


@dataclass
class StepCheck:
    checked: int = 0
    right: int = 0
    changes: int = 0  # value changes in the trace
    stated: int = 0  # of those, how many right steps state
    wrong: str = ""  # the first wrong step, in words

    @property
    def coverage(self) -> float:
        return self.stated / self.changes if self.changes else 1.0


_INT = re.compile(r"-?[1-9][\d_]*|-?0")
_FLOAT = re.compile(r"-?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|-?\d+[eE][-+]?\d+")
_CONSTANTS = {"True": True, "False": False, "None": None}


def _literal(text: str) -> tuple[bool, Any]:
    """``text`` read as a Python literal; numbers, constants and plain strings without the
    parser (most values in a trace and its reasoning are, and a parse costs ~10 us)."""
    if _INT.fullmatch(text):
        return True, int(text)
    if text in _CONSTANTS:
        return True, _CONSTANTS[text]
    if _FLOAT.fullmatch(text):
        return True, float(text)
    if (len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0] and "\\" not in text
            and text[0] not in text[1:-1]):
        return True, text[1:-1]
    try:
        return True, parse_literal_output(text)
    except ValueError:
        return False, None


_SCALAR = re.compile(r"-?(?:\d[\d_]*\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|True\b|False\b|None\b")
_OPEN = {"[": "]", "(": ")", "{": "}"}
_SPECIAL = re.compile(r"[\[\](){}'\"\\]")


def _extent(text: str) -> int:
    """How many characters of ``text`` a literal at its start can span: a bracketed value up
    to its matching bracket (strings inside skipped), a quoted string, or a scalar; 0 if none."""
    if not text:
        return 0
    first = text[0]
    if first in "'\"" or (first in "rRbBuU" and text[1:2] in ("'", '"')):
        at = 1 if first in "'\"" else 2
        quote = text[at - 1]
        i = at
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == quote:
                return i + 1
            i += 1
        return 0
    if first in _OPEN:
        depth, quote, escaped = 0, "", -1
        for special in _SPECIAL.finditer(text):  # only brackets, quotes and backslashes
            at, ch = special.start(), special.group()
            if at == escaped:
                continue
            if quote:
                if ch == "\\":
                    escaped = at + 1
                elif ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif ch in "[({":
                depth += 1
            elif ch in "])}":
                depth -= 1
                if depth == 0:
                    return at + 1
        return 0
    match = _SCALAR.match(text)
    return match.end() if match else 0


def stated_value(rest: str) -> tuple[bool, Any, str, int]:
    """(read, value, its text, characters of ``rest`` it spans) of the value that starts
    ``rest``: a backticked value, or the literal that starts it (a bracketed value, a string,
    a number, True/False/None), read once; a value followed by an operator ("3 + 4 = 7") is
    an expression, not checked."""
    lead = len(rest) - len(rest.lstrip())
    rest = rest.lstrip()
    if rest.startswith("`"):
        end = rest.find("`", 1)
        if end > 1 and "..." not in rest[1:end]:
            ok, value = _literal(rest[1:end])
            return ok, value, rest[1:end], lead + end + 1
        return False, None, "", lead
    line = rest.split("\n", 1)[0]
    end = _extent(line)
    if not end:
        return False, None, "", lead
    spanned = lead + end
    candidate = line[:end]
    if candidate.endswith(".") and not candidate[:-1].endswith((".", "e", "E")):
        candidate, end = candidate[:-1], end - 1  # the sentence's full stop, not a float's point
    after = line[end:].lstrip()
    if after[:1] and (after[0] in "+-*/%=<>([&|^@" or after[:1].isdigit()):
        return False, None, "", spanned  # "3 + 4 = 7": an expression, not the value
    if "..." in candidate or "\u2026" in candidate:
        return False, None, "", spanned  # an abbreviated value says too little
    ok, value = _literal(candidate)
    return ok, value, candidate, spanned


def value_histories(trace: str) -> dict[str, list[tuple[bool | None, Any, str, bool]]]:
    """Each name's values in trace order, in every frame the trace shows (arguments included):
    (read as a literal: None until a step asks, the value, its text, whether the trace printed
    it as a change)."""
    out: dict[str, list[tuple[bool | None, Any, str, bool]]] = {}
    for raw in trace.split("\n"):
        if (source := _SOURCE.match(raw)) and (plain := _LITERAL_ASSIGN.match(source.group(2))):
            ok, value = _literal(plain.group(2))
            if ok:
                out.setdefault(plain.group(1), []).append((True, value, plain.group(2), False))
            continue
        match = _ASSIGN.match(raw)
        if match and _NAME.fullmatch(match.group(1)):
            text = match.group(2).strip()
            out.setdefault(match.group(1), []).append((None, None, text, True))  # read when asked
    return out


def loop_counts(trace: str, code: str, funcname: str) -> set[int]:
    """How many times each loop of the entry function ran, over each of its runs."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    entry = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.name == funcname), None)
    if entry is None:
        return set()
    loops = [(n.lineno, n.body[0].lineno, max(b.end_lineno or b.lineno for b in n.body))
             for n in ast.walk(entry) if isinstance(n, (ast.For, ast.While, ast.AsyncFor))]
    if not loops:
        return set()
    lines = _entry_lines(trace, funcname)
    counts: set[int] = set()
    for header, body_first, body_last in loops:
        active, count, previous = False, 0, None
        for lineno in lines:
            if lineno == header:
                if not active:
                    active, count = True, 0
            elif active and body_first <= lineno <= body_last:
                if previous == header:
                    count += 1
            elif active and not header < lineno <= body_last:
                counts.add(count)
                active = False
            previous = lineno
        if active:
            counts.add(count)
    return counts


def _entry_lines(trace: str, funcname: str) -> list[int]:
    """The line numbers the entry function's own frame ran, in order."""
    depth, lines = 0, []
    for raw in trace.split("\n"):
        if (m := _CALL.match(raw)) or (m := _GENERATOR.match(raw)):
            depth += 1
        elif _RETURN.match(raw) or _YIELD.match(raw):
            depth -= 1
        elif (m := _SOURCE.match(raw)) and depth == 1:
            lines.append(int(m.group(1)))
    return lines


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _prose(text: str) -> str:
    """``text`` with its code spans that are code, not a name or a value, blanked out (a line
    of the program such as `low, high = 0, len(items) - 1` or `total = 0` quotes the code,
    whatever it holds)."""
    def keep_or_blank(match: re.Match) -> str:
        inner = match.group(1).strip()
        if _NAME.fullmatch(inner) or (_extent(inner) == len(inner) and _literal(inner)[0]):
            return match.group(0)
        return " " * len(match.group(0))
    return _CODE_SPAN.sub(keep_or_blank, text)


def _same(held: Any, stated: Any, rel_tol: float) -> bool:
    """As Python compares values, or as JSON does (a list written for a tuple is the same
    step: prose need not tell them apart)."""
    if python_values_match(held, stated, rel_tol):
        return True
    try:
        return values_match(held, stated, rel_tol)
    except (TypeError, ValueError, RecursionError):
        return False


def _holds(history: list, index: int, value: Any, rel_tol: float) -> bool:
    """Did the variable hold ``value`` at ``index`` of its history (read the first time a
    step asks: most of a trace's values are never stated)."""
    ok, held, text, printed = history[index]
    if ok is None:
        ok, held = _literal(text) if "..." not in text else (False, None)
        history[index] = (ok, held, text, printed)
    return ok and _same(held, value, rel_tol)


_OPENERS = re.compile(r"[\[{(\"]")


def _nested_spans(text: str) -> list[tuple[int, int]]:
    """Bracketed and double-quoted spans of the text (a value shown whole, a call): a name and
    an "=" inside one ("mask = 10" in a string of the input) state no step."""
    spans: list[tuple[int, int]] = []
    edge = 0
    for match in _OPENERS.finditer(text):
        at = match.start()
        if at < edge:
            continue
        line_end = text.find("\n", at)
        length = _extent(text[at:line_end if line_end >= 0 else len(text)])
        if length:
            spans.append((at, at + length))
            edge = at + length
    return spans


def check_steps(text: str, trace: str, code: str = "", funcname: str = "",
                rel_tol: float = 1e-6) -> StepCheck:
    """Read the steps ``text`` states and check each against ``trace`` (see the module)."""
    text = _prose(text)
    histories = value_histories(trace)
    result = StepCheck(changes=sum(entry[3] for h in histories.values() for entry in h))
    position: dict[str, int] = {}  # each name: where in its history the last right step was
    stated: set[tuple[str, int]] = set()
    inside = 0  # the end of the last value read: "mask = 10" inside a string of it is no step
    nested = _nested_spans(text)
    span = 0
    for verb in _VERB.finditer(text):
        match = _NAME_BEFORE.search(text, max(0, verb.start() - 80), verb.start())
        if match is None:
            continue
        while span < len(nested) and nested[span][1] <= match.start():
            span += 1
        if match.start() < inside or (span < len(nested) and nested[span][0] < match.start()):
            continue
        name = match.group(1) or match.group(2)
        ok, value, shown, spanned = stated_value(text[verb.end():verb.end() + 4000])
        inside = verb.end() + spanned
        history = histories.get(name)
        if not history or not ok:
            continue
        result.checked += 1
        start = position.get(name, 0)

        found = next((i for i in range(start, len(history)) if _holds(history, i, value, rel_tol)),
                     None)
        if found is not None:
            result.right += 1
            position[name] = found
            if history[found][3]:
                stated.add((name, found))
            continue
        if not result.wrong:
            earlier = next((i for i in range(start) if _holds(history, i, value, rel_tol)), None)
            # the value the trace holds next: the change after the last one stated
            following = start + 1 if name in position else start
            now = history[min(following, len(history) - 1)][2]
            result.wrong = (f"`{name}` = {shown[:80]}: " + (
                f"the variable held it earlier, not here (the trace has {now[:80]})"
                if earlier is not None else
                f"the variable never held it (the trace has {now[:80]})"))
    result.stated = len(stated)
    claims = [m for m in _LOOP_COUNT.finditer(text)]
    if claims and code and funcname:
        counts = loop_counts(trace, code, funcname)
        for claim in claims:
            word = claim.group(1).lower()
            n = int(word) if word.isdigit() else _COUNT_WORDS[word]
            if not counts:
                continue
            result.checked += 1
            if n in counts:
                result.right += 1
            elif not result.wrong:
                result.wrong = (f"a loop said to run {n} time(s): the entry function's loops ran "
                                f"{', '.join(map(str, sorted(counts)))} time(s)")
    return result
