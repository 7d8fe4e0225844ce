"""Task items: what each kept trace is turned into before translation (``--tasks``).

Each task type is one class in its own file of this package (:mod:`translate.tasks.base`
says what a task answers); :data:`REGISTRY` lists them. Adding a task is a new file and a
line here. Every item goes through the same translate -> verify -> build path; its ``task``
field says which task it is, and :func:`task_of` gives the task that knows it.
"""

from __future__ import annotations

from trace_workers.stats import StageStats
from translate.tasks.base import Task, TaskSettings
from translate.tasks.input import InputTask
from translate.tasks.output import OutputTask
from translate.tasks.rewrite import RewriteTask
from translate.tasks.variable import VariableTask

REGISTRY: dict[str, Task] = {task.name: task for task in (
    OutputTask(), VariableTask(), InputTask(), RewriteTask(),
)}
TASKS = tuple(REGISTRY)
NEEDS_LLM = tuple(name for name, task in REGISTRY.items() if task.needs_llm)

__all__ = ["NEEDS_LLM", "REGISTRY", "TASKS", "Task", "TaskSettings", "expected_answer",
           "parse_tasks", "render_reasoning", "task_items", "task_of", "training_prompt",
           "translation_prompt"]


def parse_tasks(text: str) -> tuple[str, ...]:
    tasks = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    for task in tasks:
        if task not in REGISTRY:
            raise ValueError(f"unknown task {task!r} (tasks: {', '.join(TASKS)})")
    if not tasks:
        raise ValueError("--tasks needs at least one task")
    return tasks


def task_of(item: dict) -> Task:
    """The task an item belongs to (a trace row with no ``task`` is an output item)."""
    return REGISTRY[item.get("task") or "output"]


def expected_answer(item: dict) -> tuple[str, bool]:
    """(the executed answer's text, whether it is a Python literal rather than JSON)."""
    return task_of(item).expected(item)


def translation_prompt(item: dict) -> str:
    """The prompt that asks an LLM for the item's reasoning."""
    return task_of(item).translation_prompt(item)


def render_reasoning(item: dict) -> str:
    """The renderer's reasoning for one task item, ending in a ``Final answer:`` line."""
    return task_of(item).render(item)


def training_prompt(item: dict) -> str:
    """The user turn of the item's training example: no trace."""
    return task_of(item).training_prompt(item)


def task_items(trace: dict, cfg: TaskSettings, stats: StageStats) -> list[dict]:
    """The items one kept trace row becomes, counted by the ``make_tasks`` stage."""
    items = [item for name in TASKS if name in cfg.tasks for item in REGISTRY[name].items(trace, cfg)]
    stats.see("make_tasks", len(items))
    stats.keep("make_tasks", len(items))
    for item in items:
        stats.note("task_items", item["task"])
    return items
