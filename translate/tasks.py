"""Task items: what each kept trace is turned into before translation (``--tasks``).

- ``output`` (the method's task): predict the program's output; the item is the trace row.
- ``variable``: questions about the entry function's values and line counts, answered by the
  trace (:mod:`translate.variable`); each item carries its question, its answer (a Python
  literal) and the part of the trace that answers it.
- ``input`` (LLM only): given the question, the code and the output, propose an input; the
  proposal is run in the sandbox (:mod:`translate.sandbox_check`) and kept only when the program
  returns that output (any such input counts, not only the original one).
- ``rewrite`` (LLM only, PyEdu programs): the model rewrites the program (another algorithm or
  style, same function and signature); the rewrite runs in the sandbox on every pair chosen
  for the original and is kept only if every output matches. A kept rewrite is a training
  example and a new program (OUT/rewrites/, with its origin) that another run can take.

Every item goes through the same translate -> verify -> build path; ``task`` tells the prompts,
the renderer and the verifier which question it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from trace_workers.stats import StageStats
from translate.variable import sample_questions

TASKS = ("output", "variable", "input", "rewrite")
NEEDS_LLM = ("input", "rewrite")  # the renderer cannot propose anything


@dataclass
class TaskSettings:
    tasks: tuple[str, ...] = ("output",)
    variable_questions: int = 3  # per trace, at most
    seed: int = 0


def parse_tasks(text: str) -> tuple[str, ...]:
    tasks = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r} (tasks: {', '.join(TASKS)})")
    if not tasks:
        raise ValueError("--tasks needs at least one task")
    return tasks


def is_variable(item: dict) -> bool:
    return item.get("task") == "variable"


def is_input(item: dict) -> bool:
    return item.get("task") == "input"


def is_rewrite(item: dict) -> bool:
    return item.get("task") == "rewrite"


def expected_answer(item: dict) -> tuple[str, bool]:
    """(the executed answer's text, whether it is a Python literal rather than JSON)."""
    if is_variable(item):
        return item["answer"], True
    return item["returned"], item.get("value_format") == "python"


def task_items(trace: dict, cfg: TaskSettings, stats: StageStats) -> list[dict]:
    """The items one kept trace row becomes, counted by the ``make_tasks`` stage."""
    items: list[dict] = []
    if "output" in cfg.tasks:
        items.append({**trace, "task": "output"})
    if "variable" in cfg.tasks and cfg.variable_questions > 0:
        questions = sample_questions(trace["trace"], trace["funcname"], cfg.variable_questions,
                                     f"{cfg.seed}:{trace['id']}", trace.get("refcode") or "")
        for number, question in enumerate(questions):
            items.append({**trace, "task": "variable", "id": f"{trace['id']}:v{number}",
                          "question": question.text, "answer": question.answer,
                          "trace": question.trace})
    if "input" in cfg.tasks:
        items.append({**trace, "task": "input", "id": f"{trace['id']}:i"})
    if "rewrite" in cfg.tasks and trace.get("value_format") != "python" and trace.get("program_pairs"):
        items.append({**trace, "task": "rewrite", "id": f"{trace['id']}:r"})
    stats.see("make_tasks", len(items))
    stats.keep("make_tasks", len(items))
    for item in items:
        stats.note("task_items", item["task"])
    return items
