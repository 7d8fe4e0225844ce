"""The two prompts of the method: the translation prompt (trace -> reasoning, for the LLM) and
the training prompt (the user turn of the training data). Plain functions of a trace row, so a
newcomer can read and change them in one place.
"""

from __future__ import annotations

import ast
import re

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


def _question_and_code(row: dict) -> str:
    """The head every training prompt shares (the reference method's)."""
    return f"""You are given a question that requires some input and output variables as follows:

{question(row)}

----

Here is the solution code that solves the question:

```
{row["refcode"]}
```
"""


def input_training_prompt(row: dict) -> str:
    """Input prediction (CodeI/O's reverse task): question, code and an output; no trace, no
    input. The model's own reasoning is the answer, checked by running its input."""
    return f"""{_question_and_code(row)}
Given the following output:

{row["returned"]}

Predict a feasible input that makes the code return exactly this output, by reasoning step by \
step about what the code does. End with a line `{FINAL_ANSWER_MARK} <input>`, the input written as \
{input_kind(row)}.
"""


def rewrite_training_prompt(row: dict) -> str:
    """Verified rewriting: the model writes another program with the same behaviour."""
    return f"""{_question_and_code(row)}
Rewrite this solution: use another algorithm or another style, keep the function \
`{row["funcname"]}` with the same parameters, and make it return exactly the same result for \
every input. Explain the new approach step by step, then give the whole new program in one \
```python block at the end.
"""


# How each step is written, so that translate.steps can check it against the trace.
STEP_FORM = ("- Write each change of a variable's value as `name` becomes value (or `name` = value), "
             "with the value written as a Python literal, and say how many times a loop runs as "
             "\"the loop runs N times\".")


def translation_prompt(row: dict) -> str:
    """The reference method's rules, plus a marked final-answer line that the verifier reads."""
    if row.get("task") == "variable":
        return variable_translation_prompt(row)
    if row.get("task") == "input":  # no trace to translate: the model reasons on its own
        return input_training_prompt(row)
    if row.get("task") == "rewrite":
        return rewrite_training_prompt(row)
    return f"""Given a question, an input to the question, solution code for the question, and an \
execution trace of that code on the input, turn the execution trace into a step-by-step solution \
of the question. Rules:

- Use the exact values from the execution trace at every step, so that the reasoning is correct.
{STEP_FORM}
- Do not write code in your reasoning.
- Pretend that you were never given the execution trace and that you are solving the question by \
tracing the code yourself: never mention the trace, not even while thinking.
- End with one line of the form `{FINAL_ANSWER_MARK} <value>`, where <value> is the output written \
as {value_kind(row)}.

**Question**

{question(row)}
Given the input, {shown_input(row)}, predict the output of the question by thinking step by step \
to reach the final output.
Here is solution code that solves the question:
```
{row["refcode"]}
```

**Execution Trace**

```
{strip_addresses(row["trace"]).rstrip()}
```
"""


def variable_translation_prompt(row: dict) -> str:
    """A question about one value or line count, with the part of the trace that answers it."""
    return f"""Given solution code, an input, a question about the code's execution on that input, \
and the execution trace up to the point the question asks about, turn the trace into a \
step-by-step answer. Rules:

- Use the exact values from the execution trace at every step, so that the reasoning is correct.
{STEP_FORM}
- Do not write code in your reasoning.
- Pretend that you were never given the execution trace and that you are tracing the code \
yourself: never mention the trace, not even while thinking.
- End with one line of the form `{FINAL_ANSWER_MARK} <value>`, the answer written as a Python literal.

**Code** (with line numbers)

```
{numbered(row["refcode"])}
```

**Input**: {shown_input(row)}

**Question**: {row["question"]}

**Execution Trace**

```
{strip_addresses(row["trace"]).rstrip()}
```
"""


def variable_training_prompt(row: dict) -> str:
    return f"""You are given solution code for a question, and an input:

{question(row)}

----

Here is the solution code, with line numbers:

```
{numbered(row["refcode"])}
```

Given the following input:

{shown_input(row)}

{row["question"]} Answer by tracing the code step by step on this input. End with a line \
`{FINAL_ANSWER_MARK} <value>`, the answer written as a Python literal.
"""


def training_prompt(row: dict) -> str:
    """The user turn of a training example: question, code, input; no trace."""
    if row.get("task") == "variable":
        return variable_training_prompt(row)
    if row.get("task") == "input":
        return input_training_prompt(row)
    if row.get("task") == "rewrite":
        return rewrite_training_prompt(row)
    return f"""{_question_and_code(row)}
Given the following input:

{shown_input(row)}

Predict the output of the question by tracing the given solution code step by step to reach the \
final output. End with a line `{FINAL_ANSWER_MARK} <value>`, the output written as {value_kind(row)}.
"""
