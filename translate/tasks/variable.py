"""``variable``: questions about the entry function's values and line counts, answered by the
trace (:mod:`translate.variable`); each item carries its question, its answer (a Python
literal) and the part of the trace that answers it."""

from __future__ import annotations

from translate.prompts import (
    FINAL_ANSWER_MARK,
    STEP_FORM,
    numbered,
    question,
    shown_input,
    strip_addresses,
)
from translate.render import render_variable
from translate.tasks.base import Task, TaskSettings
from translate.variable import sample_questions


class VariableTask(Task):
    name = "variable"
    walks_trace = True

    def items(self, trace: dict, cfg: TaskSettings) -> list[dict]:
        if cfg.variable_questions <= 0 or trace.get("story_level"):
            return []  # a run told folded (translate.digest) is not asked about line by line
        questions = sample_questions(trace["trace"], trace["funcname"], cfg.variable_questions,
                                     f"{cfg.seed}:{trace['id']}", trace.get("refcode") or "")
        return [{**trace, "task": self.name, "id": f"{trace['id']}:v{number}",
                 "question": q.text, "answer": q.answer, "trace": q.trace}
                for number, q in enumerate(questions)]

    def expected(self, item: dict) -> tuple[str, bool]:
        return item["answer"], True

    def translation_prompt(self, item: dict) -> str:
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
{numbered(item["refcode"])}
```

**Input**: {shown_input(item)}

**Question**: {item["question"]}

**Execution Trace**

```
{strip_addresses(item["trace"]).rstrip()}
```
"""

    def training_prompt(self, item: dict) -> str:
        return f"""You are given solution code for a question, and an input:

{question(item)}

----

Here is the solution code, with line numbers:

```
{numbered(item["refcode"])}
```

Given the following input:

{shown_input(item)}

{item["question"]} Answer by tracing the code step by step on this input. End with a line \
`{FINAL_ANSWER_MARK} <value>`, the answer written as a Python literal.
"""

    def render(self, item: dict) -> str:
        return render_variable(item)
