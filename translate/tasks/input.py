"""``input`` (LLM only): given the question, the code and the output, propose an input; the
proposal is run in the sandbox and kept only when the program returns that output (any such
input counts, not only the original one)."""

from __future__ import annotations

from translate.answer import Verdict, proposed_input
from translate.prompts import FINAL_ANSWER_MARK, input_kind, question_and_code
from translate.tasks.base import Task


class InputTask(Task):
    name = "input"
    needs_llm = True  # the renderer cannot propose anything
    runs_proposal = True

    def items(self, trace: dict, cfg) -> list[dict]:
        return [{**trace, "task": self.name, "id": f"{trace['id']}:i"}]

    def training_prompt(self, item: dict) -> str:
        """Input prediction (CodeI/O's reverse task): question, code and an output; no trace, no
        input. The model's own reasoning is the answer, checked by running its input."""
        return f"""{question_and_code(item)}
Given the following output:

{item["returned"]}

Predict a feasible input that makes the code return exactly this output, by reasoning step by \
step about what the code does. End with a line `{FINAL_ANSWER_MARK} <input>`, the input written as \
{input_kind(item)}.
"""

    def translation_prompt(self, item: dict) -> str:
        return self.training_prompt(item)  # no trace to translate: the model reasons on its own

    def read_proposal(self, generation: str, item: dict, thinking: bool) -> Verdict:
        return proposed_input(generation, thinking=thinking,
                              python=item.get("value_format") == "python", funcname=item["funcname"])

    def run_proposal(self, tracer, item: dict, proposed: str) -> tuple[str, str] | None:
        """None when the proposed input gives the output; else (reason, detail)."""
        status, _, detail = tracer.check(item["refcode"], item["funcname"], proposed, item["returned"],
                                         call_format=item.get("value_format") == "python")
        if status == "ok":
            return None
        reason = "wrong_input" if status == "mismatch" else "input_failed"
        return reason, f"input {proposed[:200]}: {status}: {detail}"[:400]
