"""Reasoning with one wrong step, made from the renderer's right reasoning for a real trace: the
errors translating models make (a value one off, a forgotten update, a neighbour's value, a
later iteration's value, a flipped branch, a wrong loop count, two steps swapped), each in the
renderer's words, in a terse style (``x = 5``) and in prose ("so x is now 5"), with or without
"Line N:" anchors. Used by tests/test_step_perturbations.py and bench/step_check.py.

Every perturbation changes what the text states (a value that differs from the one it
replaces, an outcome turned over), so each one is a wrong step by construction.
"""

from __future__ import annotations

import ast
import random
import re

from trace_workers.canonical import python_values_match, values_match
from translate.step_text import extent, literal
from translate.trace_model import LINE, parse_trace

KINDS = ("one_higher", "one_lower", "previous_value", "neighbour_value", "later_value",
         "flipped_branch", "wrong_loop_count", "swapped_steps")
STYLES = ("render", "terse", "prose")

# "`x` becomes 5", "`x` is set to 5": the renderer's change statements
_CHANGE = re.compile(r"`([A-Za-z_]\w*)` (becomes|is set to) ")
_ARG = re.compile(r"`([A-Za-z_]\w*)` = ")
_ANCHOR = re.compile(r"^Line (\d+): ", re.MULTILINE)
_FLIPS = [("it is true, so we enter its block", "it is false, so we skip its block"),
          ("it holds, so the loop body runs", "it no longer holds, so the loop ends")]
_LOOP_LINE = re.compile(r"^Line (\d+): (?:the loop over `(.+?)` (takes the next item|has no items "
                        r"left)|we check `(.+?)`: (it holds|it no longer holds))", re.MULTILINE)


def _statements(text: str) -> list[tuple[int, int, str, str]]:
    """(start of the value, its end, the name, the value's text) of every value the text
    states (changes and call arguments), in order."""
    out = []
    for pattern in (_CHANGE, _ARG):
        for match in pattern.finditer(text):
            length = extent(text[match.end():text.find("\n", match.end())
                                 if "\n" in text[match.end():] else len(text)])
            value = text[match.end():match.end() + length]
            if value.endswith(".") and value[:1] not in "[({'\"":
                value, length = value[:-1], length - 1  # the sentence's full stop
            if length:
                out.append((match.end(), match.end() + length, match.group(1), value))
    return sorted(out)


def _differs(old: str, new: str) -> bool:
    """Whether a reader comparing the two values would tell them apart (a list for a tuple is
    the same step in prose; an abbreviated value differs only as text)."""
    if "..." in old or "..." in new:
        return " ".join(old.split()) != " ".join(new.split())
    (ok_old, a), (ok_new, b) = literal(old), literal(new)
    if not (ok_old and ok_new):
        return old != new
    try:
        return not (python_values_match(a, b) or values_match(a, b))
    except (TypeError, ValueError, RecursionError):
        return old != new


def _replace(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def _int(value: str) -> int | None:
    return int(value) if re.fullmatch(r"-?\d+", value) else None


def _body(text: str) -> tuple[str, str]:
    """(the steps, the closing lines: "So the output is ..." and the final answer): only the
    steps are perturbed (a wrong final answer is the answer check's, not the step check's)."""
    cut = text.rfind("\n\nSo ")
    return (text[:cut], text[cut:]) if cut >= 0 else (text, "")


def perturb(text: str, kind: str, rng: random.Random, code: str = "", trace: str = "") -> str | None:
    """``text`` with one wrong step of ``kind``; None when the text has no step to change."""
    steps, tail = _body(text)
    statements = _statements(steps)
    if kind in ("one_higher", "one_lower"):
        ints = [s for s in statements if _int(s[3]) is not None]
        if not ints:
            return None
        start, end, _, value = rng.choice(ints)
        return _replace(steps, start, end, str(_int(value) + (1 if kind == "one_higher" else -1))) + tail
    if kind in ("previous_value", "neighbour_value", "later_value"):
        choices = []
        for number, (start, end, name, value) in enumerate(statements):
            if not steps[:start].endswith(("becomes ",)):
                continue  # a change of a value it had: not a first assignment or an argument
            if kind == "previous_value":
                others = [s[3] for s in statements[:number] if s[2] == name][-1:]
            elif kind == "neighbour_value":
                others = [s[3] for s in statements[:number] if s[2] != name][-1:]
            else:
                others = [s[3] for s in statements[number + 1:] if s[2] == name and s[3] != value][:1]
            # a value the text could state checkably (a literal, not "<Node object at ...>")
            others = [o for o in others if _differs(value, o) and "\n" not in o
                      and "..." not in o and literal(o)[0]]
            if others:
                choices.append((start, end, others[0]))
        if not choices:
            return None
        start, end, new = rng.choice(choices)
        return _replace(steps, start, end, new) + tail
    if kind == "flipped_branch":
        places = [(m.start(), a, b) for a, b in _FLIPS for m in re.finditer(re.escape(a), steps)]
        places += [(m.start(), b, a) for a, b in _FLIPS for m in re.finditer(re.escape(b), steps)]
        if not places:
            return None
        at, old, new = rng.choice(places)
        return _replace(steps, at, at + len(old), new) + tail
    if kind == "wrong_loop_count":
        counted = loop_count_sentences(steps, code, trace)
        if not counted:
            return None
        at, sentence, count = rng.choice(counted)
        wrong = count + rng.choice([-1, 1]) if count > 1 else count + 1
        return steps[:at] + sentence.replace(f"runs {count} times", f"runs {wrong} times") + \
            steps[at:] + tail
    if kind == "swapped_steps":
        lines = steps.split("\n")
        pairs = []
        for i in range(len(lines) - 1):
            # steps whose values the text states checkably (not "<Node object>")
            first, second = ([s for s in _statements(line) if "..." not in s[3] and literal(s[3])[0]]
                             for line in (lines[i], lines[i + 1]))
            if not first or not second or not lines[i].startswith("Line ") \
                    or not lines[i + 1].startswith("Line "):
                continue
            if {s[2] for s in first} & {s[2] for s in second}:
                continue  # the same variable: a swap of its values is a plain wrong value
            pairs.append(i)
        if not pairs:
            return None
        i = rng.choice(pairs)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        return "\n".join(lines) + tail
    raise ValueError(kind)


def loop_count_sentences(steps: str, code: str, trace: str) -> list[tuple[int, str, int]]:
    """(where to insert, the sentence, the count) stating how many times a loop ran, right
    after each loop-exit sentence of the renderer, for loops with no break or return in
    their body (so that counting the text's iterations counts the run's) that only the entry
    function's frame runs (a recursive call's runs of the same loop nest inside it)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    model = parse_trace(trace)
    frames: dict[int, set[int]] = {}
    for event in model.events:
        if event.kind == LINE:
            frames.setdefault(event.lineno, set()).add(event.frame)
    plain = {node.lineno for node in ast.walk(tree) if isinstance(node, (ast.For, ast.While))
             and not any(isinstance(n, (ast.Break, ast.Return, ast.Continue, ast.Raise, ast.Yield))
                         for b in node.body for n in ast.walk(b))
             and not any(isinstance(n, (ast.FunctionDef, ast.Lambda)) for b in node.body
                         for n in ast.walk(b))}
    out, counts = [], {}
    told = sorted(list(_LOOP_LINE.finditer(steps)) + list(_FOLD.finditer(steps)),
                  key=lambda m: m.start())
    for match in told:
        header = int(match.group(1) if match.re is _LOOP_LINE else match.group(2))
        if header not in plain or frames.get(header) != {0}:
            continue
        if match.re is _FOLD:  # a digest's fold: its iterations, told in one step
            counts[header] = counts.get(header, 0) + int(match.group(3))
            continue
        more = match.group(3) == "takes the next item" or match.group(5) == "it holds"
        if more:
            counts[header] = counts.get(header, 0) + 1
            continue
        n = counts.pop(header, 0)
        end = steps.find("\n", match.end())
        end = len(steps) if end < 0 else end
        name = f"over `{match.group(2)}`" if match.group(2) else f"`while {match.group(4)}`"
        out.append((end, f"\nThe loop {name} on line {header} runs {n} times.", n))
    return out


def with_loop_counts(text: str, code: str, trace: str) -> str:
    """The text with a right "the loop ... runs N times" after each loop it can count."""
    steps, tail = _body(text)
    for at, sentence, _ in reversed(loop_count_sentences(steps, code, trace)):
        steps = steps[:at] + sentence + steps[at:]
    return steps + tail


def with_loop_summaries(text: str, trace: str, code: str, story_level: int = 0) -> str:
    """The text with "After the loop, `x` is V." after each loop of the entry function that
    ends, for the last variable the loop changed and its value when the loop ends (a summary
    the check must keep). Lines run by other frames too are left alone; so are the loop ends
    that a digest at ``story_level`` folds (the text does not tell them)."""
    from translate.digest import digest_at

    model = parse_trace(trace)
    told = digest_at(model, code, story_level)
    folded = {model.events[n].position for f in told.folds for n in range(f.start, f.end)}
    runs = [e for e in model.events if e.kind == LINE and not e.reprint and not e.in_comprehension]
    steps, tail = _body(text)
    exits = list(re.finditer(r"^Line (\d+): .*?(?:has no items left, so it ends|it no longer "
                             r"holds, so the loop ends)\.", steps, re.MULTILINE))
    inserts = []
    seen: dict[int, int] = {}
    for match in exits:
        header = int(match.group(1))
        frames = {e.frame for e in runs if e.lineno == header}
        nth = seen[header] = seen.get(header, 0) + 1
        if frames != {0}:
            continue
        header_runs = [e for e in runs if e.lineno == header]
        # the header runs that end the loop: the ones after which another line runs next
        entry = [e for e in runs if e.frame == 0]  # the line its frame runs next
        following = {a.position: b for a, b in zip(entry, entry[1:], strict=False)}
        ends = [e for e in header_runs if (n := following.get(e.position)) is not None
                and not _inside_loop(code, header, n.lineno) and e.position not in folded]
        if nth > len(ends):
            continue
        end = ends[nth - 1]
        start = max((e.position for e in ends[:nth - 1]), default=-1)
        changed = [c for c in model.changes if c.frame == 0 and start < c.position < end.position
                   and c.printed and "\n" not in c.text and "..." not in c.text]
        if changed:
            inserts.append((match.end(), f" After the loop, `{changed[-1].name}` is "
                                         f"{changed[-1].text}."))
    for at, sentence in reversed(inserts):
        steps = steps[:at] + sentence + steps[at:]
    return steps + tail


def _inside_loop(code: str, header: int, lineno: int) -> bool:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.For, ast.While)) and node.lineno == header:
            return header < lineno <= max(b.end_lineno or b.lineno for b in node.body)
    return False


def without_anchors(text: str) -> str:
    return _ANCHOR.sub("", text)


def in_style(text: str, style: str) -> str:
    """The renderer's text written the way another model would write the same steps."""
    if style == "render":
        return text
    if style == "terse":
        text = _CHANGE.sub(lambda m: f"{m.group(1)} = ", text)
        text = re.sub(r", so (?=[A-Za-z_]\w* = )", "; ", text)
        text = text.replace("we check ", "").replace(": it is true, so we enter its block",
                                                     " is true")
        text = text.replace(": it is false, so we skip its block", " is false")
        text = text.replace(": it holds, so the loop body runs", " holds, so the loop body runs")
        text = text.replace(": it no longer holds, so the loop ends",
                            " no longer holds, so the loop ends")
        return text
    if style == "prose":
        text = _CHANGE.sub(lambda m: f"{m.group(1)} is now ", text)
        text = text.replace(": it is true, so we enter its block",
                            ", and that holds, so we go into the block")
        text = text.replace(": it is false, so we skip its block",
                            ", but that fails, so we skip the block")
        text = text.replace(": it holds, so the loop body runs", ", which still holds, so the "
                            "loop continues")
        text = text.replace(": it no longer holds, so the loop ends", ", which no longer holds, "
                            "so we leave the loop")
        text = text.replace("takes the next item:", "moves on, so")
        return text
    raise ValueError(style)


# -- wrong summaries of a folded run (translate.digest) ----------------------------------------
FOLD_KINDS = ("fold_count_higher", "fold_count_lower", "fold_count_and_range",
              "fold_value_of_previous_iteration", "folded_call_return")
_FOLD = re.compile(r"^(Line (\d+): the loop .*? runs )(\d+)( more times, iterations )(\d+)( to )"
                   r"(\d+)(.*)$", re.MULTILINE)
_FOLDED_CALL = re.compile(r"(`[A-Za-z_][\w.]*\([^`\n]*\)` returns |this call returns )([^\n]*?)"
                          r"(, and we are back|\.$)", re.MULTILINE)


def perturb_fold(text: str, kind: str, rng: random.Random, code: str, trace: str) -> str | None:
    """The renderer's reasoning of a folded run with one wrong summary of a fold: its count one
    off (alone, or with the range told to match), a value it leaves taken from the iteration
    before, or a folded call's return changed; None when the text has no fold of that kind."""
    if kind == "folded_call_return":
        calls = [m for m in _FOLDED_CALL.finditer(text) if _other_value(m.group(2)) is not None]
        if not calls:
            return None
        match = rng.choice(calls)
        return _replace(text, match.start(2), match.end(2), _other_value(match.group(2)))
    folds = list(_FOLD.finditer(text))
    if not folds:
        return None
    match = rng.choice(folds)
    count, last = int(match.group(3)), int(match.group(7))
    if kind == "fold_count_higher":
        return _replace(text, match.start(3), match.end(3), str(count + 1))
    if kind == "fold_count_lower":
        return _replace(text, match.start(3), match.end(3), str(count - 1)) if count > 1 else None
    if kind == "fold_count_and_range":  # a miscount told consistently: one iteration more
        shifted = f"{match.group(1)}{count + 1}{match.group(4)}{match.group(5)}{match.group(6)}" \
                  f"{last + 1}" + match.group(8).replace(_ordinal_of(last), _ordinal_of(last + 1), 1)
        return _replace(text, match.start(), match.end(), shifted)
    # fold_value_of_previous_iteration: a value stated is the one an iteration earlier
    return _value_one_iteration_early(text, match, code, trace, rng)


def _other_value(text: str) -> str | None:
    """A value one step away from ``text``'s: a number one higher, a list's last item one
    higher, a string one letter longer. A value snoop cut ("[1, 2, ..., 9]") keeps its cut:
    its last number is made one higher in the text (reading it as a literal would turn the
    "..." into ``Ellipsis``)."""
    if "..." in text:
        numbers = list(re.finditer(r"-?\d+", text))
        if not numbers:
            return None
        last = numbers[-1]
        return text[:last.start()] + str(int(last.group()) + 1) + text[last.end():]
    ok, value = literal(text)
    if not ok or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return repr(value + 1)
    if isinstance(value, list) and value and isinstance(value[-1], int):
        return repr(value[:-1] + [value[-1] + 1])
    if isinstance(value, str):
        return repr(value + "x")
    return None


def _ordinal_of(n: int) -> str:
    from translate.step_text import ordinal

    return ordinal(n)


def _value_one_iteration_early(text: str, match: re.Match, code: str, trace: str,
                               rng: random.Random) -> str | None:
    from translate.trace_model import loop_runs, parse_trace, program_loops

    model = parse_trace(trace)
    header, last = int(match.group(2)), int(match.group(7))
    told_before = int(match.group(5)) - 1
    runs = [r for r in loop_runs(model, program_loops(code))
            if r.header == header and r.iterations >= last and r.iterations > told_before]
    stated = list(re.finditer(r"`([A-Za-z_]\w*)` is ", match.group(8)))
    options = []
    for run in runs:
        end, before = run.iteration_ends[last - 1], run.iteration_ends[last - 2]
        for value in stated:
            name = value.group(1)
            changes = [c for c in model.changes if c.name == name and c.frame == run.frame
                       and not c.in_comprehension]
            at_end = [c for c in changes if c.position < end]
            earlier = [c for c in changes if c.position < before]
            if at_end and earlier and _differs(at_end[-1].text, earlier[-1].text):
                options.append((value, at_end[-1].text, earlier[-1].text))
        if options:
            break
    if not options:
        return None
    value, now, then = rng.choice(options)
    start = match.start(8) + value.end()
    if not text.startswith(now, start):
        return None
    return _replace(text, start, start + len(now), then)
