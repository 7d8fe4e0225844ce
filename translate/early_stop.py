"""Stop a doomed generation: the step check reads a streamed answer as it arrives.

Through an endpoint that streams (``stream: true``), the answer grows a few tokens at a time.
:class:`StepWatch` checks the complete lines received so far against the run (the same
``translate.steps.check_steps`` that verifies the whole answer later) and names the first
wrong step as soon as a line states it; the session then closes the request, and the server
stops generating (vLLM aborts a request whose client went away). A thinking block is not
checked: only the answer after ``</think>``, as the verify stage reads it.

A prefix of a right answer is never wrong (tests/test_early_stop.py holds the renderer's
answers to it line by line), so a stop costs nothing the full check would have kept. Checks are
spaced as the answer grows (a new check after an eighth more lines) so a long answer is read in
about linear time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from translate.answer import THINK_END
from translate.steps import check_steps


@dataclass
class StepWatch:
    trace: str
    code: str = ""
    funcname: str = ""
    rel_tol: float = 1e-6
    thinking: bool = True  # the answer starts after </think> (an answer without one: whole)
    checked_lines: int = field(default=0, init=False)
    checks: int = field(default=0, init=False)

    def wrong_step(self, text: str) -> str:
        """The first wrong step among the complete lines of ``text`` (the generation so far),
        or "" while none is wrong (or it is not yet time to look again)."""
        answer = text
        if self.thinking and THINK_END in text:
            answer = text.split(THINK_END, 1)[1]
        elif self.thinking and text.lstrip().startswith("<think>"):
            return ""  # still thinking: not checked
        complete = answer[: answer.rfind("\n") + 1]
        lines = complete.count("\n")
        if lines <= self.checked_lines + max(0, self.checked_lines // 8 - 1) or not complete.strip():
            return ""
        self.checked_lines = lines
        self.checks += 1
        return check_steps(complete, self.trace, self.code, self.funcname, self.rel_tol).wrong


def watch_of(item: dict, thinking: bool, rel_tol: float) -> dict | None:
    """What the session needs to watch an item's answer (None: a task whose steps are not
    checked against a trace)."""
    from translate.tasks import task_of

    if not task_of(item).walks_trace or not item.get("trace"):
        return None
    return {"trace": item["trace"], "code": item.get("refcode") or "",
            "funcname": item.get("funcname") or "", "rel_tol": rel_tol, "thinking": thinking}
