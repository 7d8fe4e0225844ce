"""``output``, the method's task: predict the program's output; the item is the trace row."""

from __future__ import annotations

from translate.prompts import (
    FINAL_ANSWER_MARK,
    question,
    question_and_code,
    shown_input,
    step_form,
    told_trace,
    value_kind,
)
from translate.render import render_output
from translate.tasks.base import Task


class OutputTask(Task):
    name = "output"
    walks_trace = True

    def translation_prompt(self, item: dict) -> str:
        """The reference method's rules, plus a marked final-answer line the verifier reads."""
        return f"""Given a question, an input to the question, solution code for the question, and an \
execution trace of that code on the input, turn the execution trace into a step-by-step solution \
of the question. Rules:

- Use the exact values from the execution trace at every step, so that the reasoning is correct.
{step_form(item)}
- Do not write code in your reasoning.
- Pretend that you were never given the execution trace and that you are solving the question by \
tracing the code yourself: never mention the trace, not even while thinking.
- End with one line of the form `{FINAL_ANSWER_MARK} <value>`, where <value> is the output written \
as {value_kind(item)}.

**Question**

{question(item)}
Given the input, {shown_input(item)}, predict the output of the question by thinking step by step \
to reach the final output.
Here is solution code that solves the question:
```
{item["refcode"]}
```

**Execution Trace**

```
{told_trace(item)}
```
"""

    def training_prompt(self, item: dict) -> str:
        """Question, code, input; no trace."""
        return f"""{question_and_code(item)}
Given the following input:

{shown_input(item)}

Predict the output of the question by tracing the given solution code step by step to reach the \
final output. End with a line `{FINAL_ANSWER_MARK} <value>`, the output written as {value_kind(item)}.
"""

    def render(self, item: dict) -> str:
        return render_output(item)
