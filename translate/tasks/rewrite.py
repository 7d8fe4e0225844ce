"""``rewrite`` (LLM only, PyEdu programs): the model rewrites the program (another algorithm or
style, same function and signature); the rewrite runs in the sandbox on every pair chosen for
the original and is kept only if every output matches. A kept rewrite is a training example
and a new program (OUT/rewrites/, with its origin) that another run can take."""

from __future__ import annotations

import json

from trace_workers.records import problem_id_for
from trace_workers.stream import REWRITE, row
from translate.answer import Verdict, proposed_program
from translate.prompts import question_and_code
from translate.tasks.base import Task


class RewriteTask(Task):
    name = "rewrite"
    needs_llm = True
    runs_proposal = True
    output_kind = REWRITE

    def items(self, trace: dict, cfg) -> list[dict]:
        if trace.get("value_format") == "python" or not trace.get("program_pairs"):
            return []  # a call-format record has one call, no pairs to hold a rewrite to
        return [{**trace, "task": self.name, "id": f"{trace['id']}:r"}]

    def training_prompt(self, item: dict) -> str:
        """Verified rewriting: the model writes another program with the same behaviour."""
        return f"""{question_and_code(item)}
Rewrite this solution: use another algorithm or another style, keep the function \
`{item["funcname"]}` with the same parameters, and make it return exactly the same result for \
every input. Explain the new approach step by step, then give the whole new program in one \
```python block at the end.
"""

    def translation_prompt(self, item: dict) -> str:
        return self.training_prompt(item)

    def read_proposal(self, generation: str, item: dict, thinking: bool) -> Verdict:
        return proposed_program(generation, item["funcname"], item["refcode"], thinking=thinking)

    def run_proposal(self, tracer, item: dict, proposed: str) -> tuple[str, str] | None:
        """None when the rewrite returns every expected output; else (reason, detail)."""
        pairs = json.loads(item["program_pairs"])
        for number, (input_text, expected) in enumerate(pairs):
            status, _, detail = tracer.check(proposed, item["funcname"], input_text, expected)
            if status != "ok":
                reason = "rewrite_differs" if status == "mismatch" else "rewrite_failed"
                return reason, (f"pair {number + 1} of {len(pairs)}, input {input_text[:150]}: "
                                f"{status}: {detail}")[:400]
        return None

    def output_rows(self, item: dict, proposed: str) -> list[dict]:
        return [row(REWRITE, rewrite_program(item, proposed))]


def rewrite_program(item: dict, code: str) -> dict:
    """A kept rewrite as a PyEdu record (ios as JSON text), with the run it came from."""
    ios = [{"input": json.loads(i), "output": json.loads(o)}
           for i, o in json.loads(item["program_pairs"])]
    record = {"problem_description": item.get("problem_description") or "",
              "io_requirements": item.get("io_requirements") or "", "refcode": code,
              "funcname": item["funcname"], "ios": json.dumps(ios, ensure_ascii=False)}
    return {**record, "problem_id": problem_id_for(record), "origin_id": item["id"],
            "origin_problem_id": item["problem_id"]}
