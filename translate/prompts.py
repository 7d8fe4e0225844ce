"""The pieces every task's prompts share: the question, the input as shown, the code with
line numbers, the final-answer mark and the form of a step. Each task's own translation
prompt (trace -> reasoning, for the LLM) and training prompt (the user turn of the training
data) are in its file under :mod:`translate.tasks`.
"""

from __future__ import annotations

import ast
import re

from translate.digest import digest_at

FINAL_ANSWER_MARK = "Final answer:"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def is_python(row: dict) -> bool:
    """Call-format rows hold Python literals; PyEdu rows hold JSON."""
    return row.get("value_format") == "python"


def value_kind(row: dict) -> str:
    return "a Python literal" if is_python(row) else "JSON"


def shown_input(row: dict) -> str:
    """The input as the prompts show it: a call for the call format, else the JSON object."""
    if is_python(row):
        return f"{row.get('funcname') or 'f'}({row['input']})"
    return row["input"]


def signature(code: str, name: str) -> str | None:
    """``def name(a, b=2)`` of the program's function, when it can be found."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return f"def {name}({ast.unparse(node.args)})"
    return None


def told_trace(item: dict) -> str:
    """The trace as the translation prompt shows it: whole, or, for a run longer than the
    story budget, its digest (long loops and deep calls folded, translate.digest)."""
    level = item.get("story_level") or 0
    trace = digest_at(item["trace"], item.get("refcode") or "", level).text() if level else item["trace"]
    return strip_addresses(trace).rstrip()


def step_form(item: dict) -> str:
    """How to write each step; for a folded trace, also how to tell what it folds."""
    return STEP_FORM + (FOLD_FORM if item.get("story_level") else "")


def strip_addresses(trace: str) -> str:
    """Remove `` at 0x7f..`` memory addresses (the trace stage already does; old traces may not)."""
    return _ADDRESS.sub("", trace)


def question(row: dict) -> str:
    """Problem description and I/O requirements; for programs without a description (call
    format), a question made from the function's name."""
    parts = [str(row.get("problem_description") or "").strip(),
             str(row.get("io_requirements") or "").strip()]
    text = "\n".join(part for part in parts if part)
    if not text:
        name = row.get("funcname") or "f"
        sig = signature(str(row.get("refcode") or ""), name)
        text = (f"What does the function `{sig}` return" if sig else f"What does calling `{name}`"
                f" return") + " when it is called with the given arguments?"
    return text.replace("\n\n", "\n")


def numbered(code: str) -> str:
    """The program with its line numbers, as the trace numbers them (variable questions)."""
    return "\n".join(f"{number:>4} | {line}" for number, line in enumerate(code.split("\n"), 1))


def input_kind(row: dict) -> str:
    if is_python(row):
        return f"the arguments of a call to `{row.get('funcname') or 'f'}`, as a Python argument list"
    return "a JSON object of the arguments, by name"


def question_and_code(row: dict) -> str:
    """The head every training prompt shares (the reference method's)."""
    return f"""You are given a question that requires some input and output variables as follows:

{question(row)}

----

Here is the solution code that solves the question:

```
{row["refcode"]}
```
"""


# How each step is written, so that translate.steps can check it against the trace: each stated
# value is tied to its place in the run (the line named, or the next change of that variable).
STEP_FORM = """- Walk the run in order. Where natural, start a step with the line it is about, as "Line N:".
- Write each change of a variable's value as `name` becomes value (or `name` = value), with the \
value written as a Python literal, at the point of the run where it changes.
- Write each condition's outcome as "we check `condition`: it is true, so we enter its block" \
or "it is false, so we skip its block"; for a while loop "it holds, so the loop body runs" or \
"it no longer holds, so the loop ends".
- Say how many times a loop runs as "the loop over `items` runs N times"; when you sum up a \
loop instead of walking each pass, say so: "after the loop, `total` is 45"."""
# ...and where the trace is folded (a long run's digest): each fold told in one step
FOLD_FORM = """
- The trace leaves out the middle of long loops: a line `... (the loop at line N runs K more \
times, iterations A to B, left out here; after iteration B: x = v)` stands for them. Tell it in \
one step, in these words: "the loop over `items` runs K more times, iterations A to B; after the \
Bth iteration, `x` is v", then go on with the iteration that follows.
- Where it leaves out the steps of a call, tell the call by what it returns: "`f(3)` returns 2".
- A line `~~~ N more calls from here not traced` stands for N calls the trace does not follow: \
say "N more calls are made here" and go on; state no value from inside them."""
