"""What a task type is: one kind of item a kept trace becomes, from its items to its check.

A task answers, in one place: which items a trace gives (``items``), the prompt that asks an
LLM for the reasoning (``translation_prompt``) and the user turn of the training example
(``training_prompt``), the answer the reasoning must reach (``expected``), and the renderer's
own reasoning where it can write one (``render``). A task whose answer is a proposal to run
(an input, a program) reads it from the text (``read_proposal``), runs it in the sandbox
(``run_proposal``) and may write rows of an output kind of its own (``output_rows``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trace_workers.actor import Tracer
    from translate.answer import Verdict


@dataclass
class TaskSettings:
    tasks: tuple[str, ...] = ("output",)
    variable_questions: int = 3  # per trace, at most
    seed: int = 0


class Task:
    name: str = ""
    needs_llm: bool = False  # the renderer cannot answer it
    runs_proposal: bool = False  # its answer is run in the sandbox (translate.sandbox_check)
    walks_trace: bool = False  # its reasoning walks a trace: the step check reads it
    output_kind: str | None = None  # a stream kind its kept items also write

    def items(self, trace: dict, cfg: TaskSettings) -> list[dict]:
        """The items of one kept trace row."""
        return [{**trace, "task": self.name}]

    def translation_prompt(self, item: dict) -> str:
        raise NotImplementedError

    def training_prompt(self, item: dict) -> str:
        raise NotImplementedError

    def expected(self, item: dict) -> tuple[str, bool]:
        """(the executed answer's text, whether it is a Python literal rather than JSON)."""
        return item["returned"], item.get("value_format") == "python"

    def render(self, item: dict) -> str:
        raise NotImplementedError(f"the renderer cannot answer the {self.name} task")

    def read_proposal(self, generation: str, item: dict, thinking: bool) -> Verdict:
        raise NotImplementedError

    def run_proposal(self, tracer: Tracer, item: dict, proposed: str) -> tuple[str, str] | None:
        """None when the proposal does what the task asks; else (reason, detail)."""
        raise NotImplementedError

    def output_rows(self, item: dict, proposed: str) -> list[dict]:
        return []
