"""Reading a reasoning text's final answer and checking it against the executed result.

A translation passes when its thinking is finished (``</think>``, for models that think) and
the final answer of the text after it equals the value the program returned. An answer with
no thinking block at all is a model that does not think (most hosted models): its whole text
is the reasoning. A thinking block that opened and never closed is unfinished (a cut at the
token limit is told by the caller, which knows the limit). The final answer
is, in order of preference: the last ``Final answer:`` line; else the last fenced code block;
else the last line that parses as a JSON or Python literal; else the value after the last
"the output/answer/result is". Values are compared the way the
trace stage compares them (JSON semantics, float tolerance).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any

from trace_workers.canonical import python_values_match, values_match
from trace_workers.records import parse_call_arguments, parse_literal_output
from translate.prompts import FINAL_ANSWER_MARK

THINK_START, THINK_END = "<think>", "</think>"
_MARK = re.compile(rf"^[ \t>*#_-]*{re.escape(FINAL_ANSWER_MARK)}[*_]*[ \t]*", re.IGNORECASE | re.MULTILINE)
_FENCE = re.compile(r"```[a-zA-Z]*\n(.*?)```", re.DOTALL)
# "... so the output is [1, 2]." / "The answer is **7**": the value after the last such phrase
_PROSE = re.compile(r"\b(?:(?:answer|output|result|returned value)\s*(?:is|:|=|would be|will be)|returns?)"
                    r"\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)


class NoAnswer(Exception):
    pass


@dataclass
class Verdict:
    ok: bool
    reason: str = ""  # reject reason when not ok
    detail: str = ""
    answer_text: str = ""  # the text after </think>: the training example's assistant turn
    final_answer: str | None = None  # the parsed answer as JSON text


def split_thinking(text: str, thinking: bool) -> tuple[str, str] | None:
    """(thinking, answer) of a generation; None when its thinking opened and never closed."""
    if not thinking:
        return "", text.strip()
    if THINK_END not in text:
        return None if THINK_START in text else ("", text.strip())
    before, _, after = text.rpartition(THINK_END)
    return before.replace(THINK_START, "").strip(), after.strip()


def has_thinking(text: str) -> bool:
    return THINK_START in text or THINK_END in text


def to_jsonable(value: Any) -> Any:
    """Python literal -> the JSON value it would be (tuples and sets become lists)."""
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [to_jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, complex):
        raise ValueError("complex numbers have no JSON form")
    return value


def parse_literal(text: str, python: bool = False) -> Any:
    """A JSON value, else a Python literal (turned into its JSON value); with ``python``, a
    Python literal kept as it is, else JSON. Raises ValueError when the text is neither."""
    text = text.strip().rstrip(".").strip()
    if text.startswith("`") and text.endswith("`") and len(text) >= 2:
        text = text.strip("`").strip()
    if not text:
        raise ValueError("empty")
    if python:
        try:
            return parse_literal_output(text)
        except ValueError:
            pass
    try:
        return json.loads(text)
    except ValueError:
        pass
    return to_jsonable(parse_literal_output(text))


def final_answer(text: str, python: bool = False) -> Any:
    """The value a reasoning text ends on (``python``: read as a Python literal); raises NoAnswer."""
    marks = list(_MARK.finditer(text))
    if marks:
        tail = text[marks[-1].end():].strip()
        first_line = tail.split("\n", 1)[0]
        fenced = _FENCE.findall(tail)
        # the value on the mark's line; else all that follows (a value over several lines)
        for candidate in (first_line, *(fenced[-1:]), tail):
            try:
                return parse_literal(candidate, python)
            except ValueError:
                continue
        return first_line.strip().strip("`*").strip()  # a bare string answer
    for block in reversed(_FENCE.findall(text)):
        try:
            return parse_literal(block, python)
        except ValueError:
            continue
    for line in reversed(text.strip().splitlines()):
        try:
            return parse_literal(line, python)
        except ValueError:
            continue
    for phrase in reversed(_PROSE.findall(text)):
        try:
            return parse_literal(phrase.strip().rstrip(".").strip("*").strip(), python)
        except ValueError:
            continue
    raise NoAnswer("no final answer found")


def answer_part(text: str, thinking: bool) -> str | Verdict:
    """The text after the thinking, or the failed Verdict that says why there is none."""
    split = split_thinking(text, thinking)
    if split is None:
        return Verdict(False, "unfinished_thinking",
                       f"{THINK_START} opened and no {THINK_END} in {len(text)} characters")
    _, answer_text = split
    if not answer_text:
        return Verdict(False, "empty_answer", "nothing after the thinking")
    return answer_text


def verify(text: str, returned_json: str, *, thinking: bool = True, rel_tol: float = 1e-6,
           python: bool = False) -> Verdict:
    """Check a generation against the executed return value: JSON text, or with ``python``
    (the call format) a Python literal compared as Python compares values."""
    answer_text = answer_part(text, thinking)
    if isinstance(answer_text, Verdict):
        return answer_text
    try:
        answer = final_answer(answer_text, python)
    except NoAnswer as exc:
        return Verdict(False, "no_final_answer", str(exc), answer_text)
    if python:
        answer_json = repr(answer)
        same = python_values_match(answer, parse_literal_output(returned_json), rel_tol)
    else:
        answer_json = json.dumps(answer, ensure_ascii=False)
        same = values_match(answer, json.loads(returned_json), rel_tol)
    if not same:
        return Verdict(False, "wrong_answer",
                       f"answered {answer_json[:200]}, the program returned {returned_json[:200]}",
                       answer_text, answer_json)
    return Verdict(True, answer_text=answer_text, final_answer=answer_json)


def proposed_input(text: str, *, thinking: bool = True, python: bool = False,
                   funcname: str = "") -> Verdict:
    """The input a generation proposes (input prediction): ``final_answer`` is its text, a JSON
    object of keyword arguments or (``python``) a Python argument list, ready to run. Whether
    it is right is for the sandbox to say (translate.sandbox_check)."""
    answer_text = answer_part(text, thinking)
    if isinstance(answer_text, Verdict):
        return answer_text
    marks = list(_MARK.finditer(answer_text))
    if python:
        if not marks:
            return Verdict(False, "no_final_answer", f"no {FINAL_ANSWER_MARK} line", answer_text)
        line = answer_text[marks[-1].end():].split("\n", 1)[0].strip().strip("`").strip()
        if funcname and line.startswith(f"{funcname}(") and line.endswith(")"):
            line = line[len(funcname) + 1:-1]  # f(1, 2) -> 1, 2
        try:
            parse_call_arguments(line)
        except ValueError as exc:
            return Verdict(False, "bad_input", f"not an argument list: {exc}"[:300], answer_text)
        return Verdict(True, answer_text=answer_text, final_answer=line)
    try:
        value = final_answer(answer_text)
    except NoAnswer as exc:
        return Verdict(False, "no_final_answer", str(exc), answer_text)
    if not isinstance(value, dict):
        return Verdict(False, "bad_input", f"not a JSON object of arguments: {json.dumps(value)[:200]}",
                       answer_text)
    return Verdict(True, answer_text=answer_text, final_answer=json.dumps(value, ensure_ascii=False))


def proposed_program(text: str, funcname: str, original: str, *, thinking: bool = True) -> Verdict:
    """The program a generation proposes (rewrite task): the last fenced code block, which must
    parse, define ``funcname`` at its top level and differ from ``original``; ``final_answer``
    is its source. Whether it behaves the same is for the sandbox to say."""
    answer_text = answer_part(text, thinking)
    if isinstance(answer_text, Verdict):
        return answer_text
    blocks = _FENCE.findall(answer_text)
    if not blocks:
        return Verdict(False, "no_program", "no fenced code block", answer_text)
    code = blocks[-1]
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError) as exc:
        return Verdict(False, "bad_program", f"does not parse: {exc}"[:300], answer_text)
    if not any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == funcname
               for node in tree.body):
        return Verdict(False, "bad_program", f"defines no top-level {funcname}", answer_text)
    try:
        same = ast.dump(tree) == ast.dump(ast.parse(original))
    except (SyntaxError, ValueError):
        same = False
    if same:
        return Verdict(False, "same_program", "the rewrite is the original program", answer_text)
    return Verdict(True, answer_text=answer_text, final_answer=code)
