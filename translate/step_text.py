"""Reading the steps a reasoning states, in text order: what it claims, not whether it is true.

A reasoning is read into claims (:func:`read_claims`), each at its place in the text:

- ``Anchor``: "Line N:" (or "On line N," at the start of a sentence): the statements up to the
  next anchor or the end of the text line are about that run of line N;
- ``ValueClaim``: "`name` becomes value" (a change: becomes, is set to, is now, changes to,
  is updated to, ...; "name = value" where it starts a clause, the terse form) or "`name` is
  value" (a state: is, equals, remains, stays, holds, and "=" inside a clause such as "with `n`
  = 3"); its sentence may say it summarises ("after the loop", "finally", "after 3
  iterations");
- ``ReturnClaim``: "`f` returns value";
- ``BranchClaim``: a condition's outcome ("we check `cond`: it is true / false", "the
  condition holds / fails", "we enter / skip its block", "the loop body runs", "the loop ends",
  "has no items left"), one per sentence, with the code it quotes;
- ``LoopCountClaim``: "the loop runs N times", with the code or line it names.

A value is read only when it is a literal (a number, a string, a bracketed value, True, False,
None), written whole: "`s` becomes the reversed string" or "[1, 2, ...]" states nothing
checkable. Code quoted in backticks (`low, high = 0, len(items) - 1`) is code, not a step.
:mod:`translate.steps` checks the claims against the trace.
"""

from __future__ import annotations

import ast
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from trace_workers.records import parse_literal_output

# -- values ----------------------------------------------------------------------------------

_INT = re.compile(r"-?[1-9][\d_]*|-?0")
_FLOAT = re.compile(r"-?(?:\d+\.\d*|\.\d+)(?:[eE][-+]?\d+)?|-?\d+[eE][-+]?\d+")
_CONSTANTS = {"True": True, "False": False, "None": None}
_SCALAR = re.compile(r"-?(?:\d[\d_]*\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|True\b|False\b|None\b")
_OPEN = {"[": "]", "(": ")", "{": "}"}
_SPECIAL = re.compile(r"[\[\](){}'\"\\]")
# a number followed by one of these is a quantity in prose ("5 times", "3 more"), not a value
_QUANTITY = re.compile(r"(?:times|more|less|fewer|larger|smaller|greater|bigger|higher|lower|"
                       r"than|of|percent|digits?|items?|elements?|characters?|letters?|"
                       r"iterations?|steps?|places?|positions?)\b", re.IGNORECASE)


@lru_cache(maxsize=8192)
def literal(text: str) -> tuple[bool, Any]:
    """``text`` read as a Python literal; numbers, constants and plain strings without the
    parser (most values in a trace and its reasoning are, and a parse costs ~10 us). Cached:
    a reasoning states the values its trace prints. The value is shared: never change it."""
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


def extent(text: str) -> int:
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


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True, slots=True)
class Abbreviated:
    """A value written with "..." as snoop abbreviates long values: it says too little to be
    read, but a copy of the trace's text can still be told from a copy of another value's."""

    text: str  # its whitespace made single spaces


def abbreviated(text: str) -> Abbreviated:
    return Abbreviated(" ".join(text.split()))


def stated_value(rest: str) -> tuple[bool, Any, str, int]:
    """(read, value, its text, characters of ``rest`` it spans) of the value that starts
    ``rest``: a backticked value, or the literal that starts it (a bracketed value, a string,
    a number, True/False/None), read once; a value followed by an operator ("3 + 4 = 7") is
    an expression, not checked."""
    lead = len(rest) - len(rest.lstrip())
    rest = rest.lstrip()
    if rest.startswith("`"):
        end = rest.find("`", 1)
        if end > 1 and "..." in rest[1:end]:
            return True, abbreviated(rest[1:end]), rest[1:end], lead + end + 1
        if end > 1:
            ok, value = literal(rest[1:end])
            return ok, value, rest[1:end], lead + end + 1
        return False, None, "", lead
    line = rest.split("\n", 1)[0]
    end = extent(line)
    if not end:
        return False, None, "", lead
    spanned = lead + end
    candidate = line[:end]
    if candidate.endswith(".") and not candidate[:-1].endswith((".", "e", "E")):
        candidate, end = candidate[:-1], end - 1  # the sentence's full stop, not a float's point
    after = line[end:].lstrip()
    if after[:1] and (after[0] in "+-*/%=<>([&|^@" or after[:1].isdigit()):
        return False, None, "", spanned  # "3 + 4 = 7": an expression, not the value
    if candidate[:1] not in "[({'\"" and _QUANTITY.match(after):
        return False, None, "", spanned  # "5 times larger": a quantity, not the value
    if "..." in candidate:
        return True, abbreviated(candidate), candidate, spanned
    if "\u2026" in candidate:
        return False, None, "", spanned  # an abbreviated value the trace never prints
    ok, value = literal(candidate)
    return ok, value, candidate, spanned


# -- claims -----------------------------------------------------------------------------------

@dataclass(slots=True)
class Anchor:
    at: int
    lineno: int
    end: int  # where its scope ends in the text


@dataclass(slots=True)
class CallClaim:
    """"We call `f`": the text is at the next call of ``f`` (checks nothing, marks a place)."""

    at: int
    name: str


@dataclass(slots=True)
class ValueClaim:
    at: int
    name: str
    value: Any
    shown: str
    change: bool  # a change verb ("becomes"), not a state ("is", "with `n` = 3")
    summary: str  # "", "loop", "end" or "iteration"
    iteration: int = 0  # "after N iterations": N (-1: the last)


NOT_READ = object()  # a value a claim states that cannot be read (it still marks a place)
NOT_READ_SPAN = 4000  # the text kept of it, at most (to its line's end)


@dataclass(slots=True)
class ReturnClaim:
    at: int
    name: str  # "" for "this call returns"
    value: Any
    shown: str
    # "`f(3, [1])` returns 2": the call's arguments, positional and by keyword (None: no call
    # written out)
    args: tuple[list[Any], dict[str, Any]] | None = None


@dataclass(slots=True)
class BranchClaim:
    at: int
    outcomes: list[bool]  # each phrase's outcome: True = the block or body runs
    loop: bool  # a loop's phrase ("the loop ends", "takes the next item")
    condition: bool  # a condition's phrase ("it is true", "we skip its block")
    quoted: list[str] = field(default_factory=list)  # code quoted before the first phrase
    phrase: str = ""


@dataclass(slots=True)
class LoopCountClaim:
    at: int
    count: int
    quoted: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # "the loop on line 4"
    # "the loop runs 37 more times, iterations 3 to 39": iterations told in one step, after
    # those told before; the range when the sentence gives it; where the sentence ends
    more: bool = False
    first: int = 0
    last: int = 0
    end: int = 0


Claim = Anchor | CallClaim | ValueClaim | ReturnClaim | BranchClaim | LoopCountClaim

_ANCHOR = re.compile(r"[Ll]ine (\d+)(?:\*\*)?\s*(?::|,(?= ))")
# what may stand before "Line N:" (the start of a line or sentence, markup, "On")
_ANCHOR_BEFORE = re.compile(r"(?:^|[.!?] )[ \t>*_-]*(?:\*\*)?(?:(?:On|At|In) )?$", re.MULTILINE)
_CHANGE_VERB = (r"becomes|is set to|is now|now is|changes to|is changed to|is updated to|"
                r"is reassigned to|is assigned(?: to)?|now holds|now equals|is incremented to|"
                r"is decremented to|increases to|decreases to|goes up to|goes down to|grows to|"
                r"drops to|turns into")
_STATE_VERB = r"is still|remains|stays|equals|holds|is"
_VERB = re.compile(rf"(?<![=<>!+\-*/%&|^@:])=(?!=)|\b(?:{_CHANGE_VERB}|{_STATE_VERB})\b"
                   r"(?:\s+(?:the value|equal to))?")
_STATE_FULL = re.compile(rf"(?:{_STATE_VERB})(?:\s+(?:the value|equal to))?")
# what stands before a name whose "=" is a change (the terse form "x = 5" starting a clause)
_CLAUSE_START = re.compile(r"(?:^|[\n:;,]|(?<=[.!?])\s|\b(?:so|then|now|and|next|here)\s*)[\s>*_-]*"
                           r"(?:\*\*)?$", re.IGNORECASE)
# "we call `f` with `n` = 3": an argument bound by a new call (the next change of `n`)
_CALL_WITH = re.compile(r"\bcall(?:s|ed|ing)?\b[^.\n;:]{0,100}?\bwith\s*$", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z_]\w*")
_RETURNS = re.compile(r"`([A-Za-z_][\w.]*)`\s+(?:returns|gives back)\s+")
_CALL_RETURNS = re.compile(r"`([A-Za-z_][\w.]*)\(([^`\n]*)\)`\s+(?:returns|gives back)\s+")
_WE_CALL = re.compile(r"(?:^|(?<=[.!?:] ))[Ww]e call `([A-Za-z_<][\w.<>]*)`", re.MULTILINE)
_THIS_CALL_RETURNS = re.compile(r"\b[Tt]his call (?:returns|gives back)\s+")
_COUNT_WORDS = {"once": 1, "twice": 2, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
             "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "last": -1, "final": -1}
_LOOP_COUNT = re.compile(
    r"\b(?:loop|body)\b[^.\n]{0,80}?\b(?:runs|iterates|repeats|executes|goes round|goes around|"
    r"ran|iterated|repeated|executed)\s+(\d+|once|twice|one|two|three|four|five|six|seven|eight|"
    r"nine|ten)(?!\s+more\b)(?:\s+times?)?\b", re.IGNORECASE)
_LOOP_MORE = re.compile(
    r"\b(?:loop|body)\b[^.\n]{0,80}?\b(?:runs|iterates|repeats|executes|goes round|goes around|"
    r"ran|iterated|repeated|executed)\s+(\d+|once|twice|one|two|three|four|five|six|seven|eight|"
    r"nine|ten)\s+more(?:\s+times?)?\b", re.IGNORECASE)
_FOLD_END = re.compile(r"[.!?](?=\s+[A-Z`])")
_ITERATION_RANGE = re.compile(r"\biterations\s+(\d+)\s*(?:to|through|-|\u2013)\s*(\d+)\b",
                              re.IGNORECASE)
_LINE_MENTION = re.compile(r"\bline (\d+)\b", re.IGNORECASE)
_SUMMARY_LOOP = re.compile(
    r"\b(?:after|once|when|by the time|by the end of|at the end of|out of)\s+(?:the\s+|this\s+|"
    r"that\s+|all\s+)?(?:(?:outer|inner|whole|entire|for|while|last|final)\s+)?loop\b|"
    r"\bafter all (?:the )?iterations\b|\bthe loop (?:ends|finishes) with\b|\bloop (?:is over|"
    r"has (?:ended|finished)|is done)\b", re.IGNORECASE)
_SUMMARY_END = re.compile(r"\b(?:finally|in the end|at the end|by the end|eventually|ultimately|"
                          r"at last)\b", re.IGNORECASE)
_SUMMARY_ITERATION = re.compile(
    r"\bafter (?:the )?(\d+|one|two|three|four|five|six|seven|eight|nine|ten|first|second|third|"
    r"fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|final|\d+(?:st|nd|rd|th)) "
    r"(?:full )?(?:iterations?|passes|pass|rounds?|times? through)\b", re.IGNORECASE)

_SUBJECT_BEFORE = re.compile(r"(?:\b(?:it|this|that|the condition|the test|the check|"
                             r"the comparison)|`[^`\n]+`)\s+(?:still\s+)?$", re.IGNORECASE)
# each outcome phrase: (outcome, "condition" or "loop", whether a subject must stand before it);
# one pattern, case-sensitive but for a sentence's first letter (a third of the cost)
_PHRASE_KINDS = {"nc": (False, "condition", True), "pc": (True, "condition", True),
                 "nb": (False, "condition", False), "pb": (True, "condition", False),
                 "pl": (True, "loop", False), "nl": (False, "loop", False)}
_PHRASES = re.compile(
    r"\b(?:(?P<nc>is false|evaluates to [Ff]alse|is not true|does not hold|doesn't hold|"
    r"no longer holds|fails|is not satisfied|is not met|is no longer true)\b"
    r"|(?P<pc>is true|evaluates to [Tt]rue|holds(?: true)?(?![ \t]*[\w`'\"\[({-])|is satisfied|"
    r"is met\b|succeeds)"
    r"|(?P<nb>[Ww]e (?:skip|bypass|jump over|do not enter|don't enter|do not take|don't take)"
    r"\s+(?:its|the|this)\s+(?:\w+\s+){0,2}?(?:block|body|branch)\b|[Ww]e (?:enter|go into|take)"
    r" the else\b)"
    r"|(?P<pb>[Ww]e (?:enter|go into|step into|take)\s+(?:its|the|this)\s+"
    r"(?:(?!else\b)\w+\s+){0,2}?(?:block|body|branch)\b)"
    r"|(?P<pl>[Tt]he loop body runs\b|takes the next item\b|[Tt]he loop (?:continues|goes on|"
    r"runs again)\b)"
    r"|(?P<nl>[Tt]he loop (?:ends|stops|terminates|finishes|is over|exits)\b|[Nn]o (?:more )?"
    r"items (?:are )?left\b|[Ww]e (?:exit|leave) the loop\b))")
_TIME_WORDS = re.compile(r"\b(?:when|once|after|until|before|by the time|as soon as)\s+$",
                         re.IGNORECASE)
_SENTENCE_END = re.compile(r"\n|[.!?][ \t]+")
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_OPENERS = re.compile(r"[\[{(\"]")


def _prose(text: str) -> str:
    """``text`` with its code spans that are code, not a name or a value, blanked out (a line
    of the program such as `low, high = 0, len(items) - 1` or `total = 0` quotes the code,
    whatever it holds)."""
    def keep_or_blank(match: re.Match) -> str:
        inner = match.group(1).strip()
        if _NAME.fullmatch(inner) or (extent(inner) == len(inner) and literal(inner)[0]):
            return match.group(0)
        return " " * len(match.group(0))
    return _CODE_SPAN.sub(keep_or_blank, text)


def _nested_spans(text: str) -> list[tuple[int, int]]:
    """Bracketed and double-quoted spans of the text (a value shown whole, a call, a quoted
    question): a name and an "=" inside one ("mask = 10" in a string of the input) state no
    step."""
    spans: list[tuple[int, int]] = []
    edge = 0
    for match in _OPENERS.finditer(text):
        at = match.start()
        if at < edge:
            continue
        line_end = text.find("\n", at)
        length = extent(text[at:line_end if line_end >= 0 else len(text)])
        if length:
            spans.append((at, at + length))
            edge = at + length
    return spans


class _Spans:
    """Whether a place in the text is inside a nested span (places asked in rising order)."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.spans, self.next = spans, 0

    def inside(self, at: int) -> bool:
        while self.next < len(self.spans) and self.spans[self.next][1] <= at:
            self.next += 1
        return self.next < len(self.spans) and self.spans[self.next][0] < at


def _name_before(text: str, at: int) -> tuple[int, str, bool] | None:
    """(where it starts, the name, whether backticked) of the name right before ``at``
    (spaces between): `total` or a bare name not after a dot; None if there is none."""
    end = at
    while end > 0 and text[end - 1] in " \t":
        end -= 1
    if end == 0:
        return None
    if text[end - 1] == "`":
        start = text.rfind("`", max(0, end - 82), end - 1)
        if start < 0 or not _NAME.fullmatch(text, start + 1, end - 1):
            return None
        return start, text[start + 1:end - 1], True
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    if start == end or (start > 0 and text[start - 1] in ".`") or not _NAME.fullmatch(text, start, end):
        return None
    return start, text[start:end], False


def _sentences(text: str) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + (text[match.start()] != "\n")  # the full stop ends its sentence
        bounds.append((start, end))
        start = match.end()
    bounds.append((start, len(text)))
    return bounds


def _summary(sentence: str) -> tuple[str, int]:
    if match := _SUMMARY_ITERATION.search(sentence):
        word = match.group(1).lower()
        if word.isdigit():
            return "iteration", int(word)
        if word[:-2].isdigit():
            return "iteration", int(word[:-2])
        return "iteration", _COUNT_WORDS.get(word) or _ORDINALS[word]
    if _SUMMARY_LOOP.search(sentence):
        return "loop", 0
    if _SUMMARY_END.search(sentence):
        return "end", 0
    return "", 0


def _rest_of_line(text: str, start: int) -> str:
    """The text of a value that cannot be read, from ``start`` to its line's end (at most
    NOT_READ_SPAN characters): compared as text where it copies the trace's."""
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    return text[start:min(line_end, start + NOT_READ_SPAN)].strip()


def read_claims(text: str) -> list[Claim]:
    """Every claim ``text`` makes, in text order (see the module)."""
    prose = _prose(text)
    sentences = _sentences(prose)
    claims: list[Claim] = []
    sentence_at = _SentenceOf(sentences)

    anchors = [m for m in _ANCHOR.finditer(prose)
               if _ANCHOR_BEFORE.search(prose, max(0, m.start() - 12), m.start())]
    for number, match in enumerate(anchors):
        line_end = prose.find("\n", match.end())
        end = len(prose) if line_end < 0 else line_end
        if number + 1 < len(anchors):
            end = min(end, anchors[number + 1].start())
        claims.append(Anchor(match.start(), int(match.group(1)), end))

    inside = 0  # the end of the last value read: "mask = 10" inside a string of it is no step
    nested = _Spans(_nested_spans(prose))
    summaries: dict[int, tuple[str, int]] = {}
    for verb in _VERB.finditer(prose):
        before = _name_before(prose, verb.start())
        if before is None or before[0] < inside or nested.inside(before[0]):
            continue
        at, name, backticked = before
        if verb.group(0) == "=":
            change = bool(_CLAUSE_START.search(prose, max(0, at - 40), at)
                          or _CALL_WITH.search(prose, max(0, at - 120), at))
        else:
            change = _STATE_FULL.fullmatch(verb.group(0)) is None
            if not change and not backticked:
                continue  # "the answer is 3": a state needs a backticked name
        ok, value, shown, spanned = stated_value(text[verb.end():verb.end() + 4000])
        inside = verb.end() + spanned
        if not ok and (change or backticked):
            # a value that cannot be read (`seen` becomes set(), `q` is deque([1])): a change
            # still marks its place, and a fold's value is compared as text, when it copies
            # the trace's (translate.steps)
            claims.append(ValueClaim(at, name, NOT_READ, _rest_of_line(text, verb.end()),
                                     change, "", 0))
            continue
        if not ok:
            continue
        start, end = sentence_at(at)
        if start not in summaries:
            summaries[start] = _summary(prose[start:end])
        kind, iteration = summaries[start]
        claims.append(ValueClaim(at, name, value, shown, change, kind, iteration))

    nested = _Spans(nested.spans)
    for match in _RETURNS.finditer(prose):
        ok, value, shown, _ = stated_value(text[match.end():match.end() + 4000])
        if ok and not nested.inside(match.start()):
            claims.append(ReturnClaim(match.start(), match.group(1), value, shown))
    # a call told by its result marks its place even when the result cannot be read
    # (<Node object>): the steps after it are about what follows its return
    for match in _CALL_RETURNS.finditer(text):
        args = call_arguments(match.group(2))
        ok, value, shown, _ = stated_value(text[match.end():match.end() + 4000])
        if args is not None:
            claims.append(ReturnClaim(match.start(), match.group(1), value if ok else NOT_READ,
                                      shown if ok else _rest_of_line(text, match.end()), args))
    for match in _WE_CALL.finditer(text):
        claims.append(CallClaim(match.start(), match.group(1)))
    for match in _THIS_CALL_RETURNS.finditer(prose):
        ok, value, shown, _ = stated_value(text[match.end():match.end() + 4000])
        claims.append(ReturnClaim(match.start(), "", value if ok else NOT_READ,
                                  shown if ok else _rest_of_line(text, match.end())))

    claims.extend(_branch_claims(text, prose, sentences))

    counts = _LOOP_COUNT.finditer(prose) if ("time" in prose or "once" in prose
                                              or "twice" in prose) else ()
    for match in counts:
        word = match.group(1).lower()
        start, end = sentence_at(match.start())
        sentence = text[start:end]
        claims.append(LoopCountClaim(
            match.start(), int(word) if word.isdigit() else _COUNT_WORDS[word],
            [m.group(1).strip() for m in _CODE_SPAN.finditer(sentence)],
            [int(m.group(1)) for m in _LINE_MENTION.finditer(sentence)]))
    more = _LOOP_MORE.finditer(prose) if "more" in prose else ()
    for match in more:
        word = match.group(1).lower()
        start, end = sentence_at(match.start())
        sentence = text[start:end]
        # the fold's values run to the end of its sentence: a full stop before a capital, or
        # the line's end ("0. , 0." inside an array's repr ends nothing)
        line_end = text.find("\n", match.end())
        line_end = len(text) if line_end < 0 else line_end
        stop = _FOLD_END.search(text, match.end(), line_end)
        end = stop.start() + 1 if stop else line_end
        span = _ITERATION_RANGE.search(prose, match.end(), end)
        claims.append(LoopCountClaim(
            match.start(), int(word) if word.isdigit() else _COUNT_WORDS[word],
            # the loop is named before "runs N more times"; the values after it name no loop
            [m.group(1).strip() for m in _CODE_SPAN.finditer(text, start, match.end())],
            [int(m.group(1)) for m in _LINE_MENTION.finditer(text, start, match.end())], True,
            int(span.group(1)) if span else 0, int(span.group(2)) if span else 0, end))
    claims.sort(key=lambda claim: claim.at)
    return claims


def call_arguments(text: str) -> tuple[list[Any], dict[str, Any]] | None:
    """The arguments of a call written out (``3, [1, 2], k=4``), each a literal; None when
    one is not (``n - 1``: nothing to compare)."""
    if "..." in text or "\u2026" in text:
        return None  # an abbreviated argument: nothing to compare it with
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        positional = [ast.literal_eval(arg) for arg in call.args]
        named = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return None
    if any(isinstance(arg, ast.Starred) for arg in call.args) or len(named) < len(call.keywords):
        return None
    return positional, named


class _SentenceOf:
    """The sentence a place in the text is in (places asked in any order)."""

    def __init__(self, sentences: list[tuple[int, int]]) -> None:
        self.sentences = sentences
        self.starts = [start for start, _ in sentences]

    def __call__(self, at: int) -> tuple[int, int]:
        return self.sentences[max(0, bisect_right(self.starts, at) - 1)]


def _branch_claims(text: str, prose: str, sentences: list[tuple[int, int]]) -> list[BranchClaim]:
    """One claim per sentence that states an outcome; the code it quotes before its first
    phrase names the condition."""
    found: list[tuple[int, int, bool, str]] = []  # (at, end, outcome, kind)
    for match in _PHRASES.finditer(prose):
        outcome, kind, subject = _PHRASE_KINDS[match.lastgroup]
        if subject and not _SUBJECT_BEFORE.search(text, max(0, match.start() - 300),
                                                   match.start()):
            continue
        if kind == "loop" and _TIME_WORDS.search(prose, max(0, match.start() - 16), match.start()):
            continue  # "when the loop ends, ..." tells a time, not an outcome
        found.append((match.start(), match.end(), outcome, kind))
    if not found:
        return []
    found.sort()
    claims: list[BranchClaim] = []
    sentence = 0
    for at, end, outcome, kind in found:
        while sentences[sentence][1] < at:
            sentence += 1
        start = sentences[sentence][0]
        if claims and claims[-1].at >= start:
            claim = claims[-1]
        else:
            quoted = [m.group(1).strip() for m in _CODE_SPAN.finditer(text, start, at)]
            claim = BranchClaim(at, [], False, False, quoted, prose[at:end])
            claims.append(claim)
        claim.outcomes.append(outcome)
        if kind == "loop":
            claim.loop = True
        else:
            claim.condition = True
    return claims
