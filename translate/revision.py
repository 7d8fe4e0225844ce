"""A second chance for the translator (``--revisions N``).

A generation the check rejects for a reason one more turn can cure (a wrong step, a wrong final
answer, too few steps, an answer cut at its limit or without its final line) goes back to the
same model in the same conversation, with one user turn that names what failed: the first wrong
step and what the trace holds there, or the executed result. A revision is kept only when it
passes every check, and the training example holds the final reasoning alone (its prompt is the
item's training prompt, never this conversation), so no feedback text reaches it.

The conversation travels in the item itself (:data:`TURNS`, :data:`ATTEMPTS`): a revision is a
``request`` row like the first, so the engine's and the endpoint's preprocessing read it the
same way, and a run killed between rounds redoes the block, as any other.
"""

from __future__ import annotations

import re

from translate.answer import THINK_END

TURNS = "revision_turns"  # the conversation after the first prompt: assistant, user, ...
ATTEMPTS = "attempt_reasons"  # each earlier attempt's "reason: detail"

# the verify reasons a further turn may cure (a prompt that does not fit, an engine error or
# an endpoint that fails for good are not the model's reasoning: they end the item)
REVISABLE = frozenset({"wrong_step", "wrong_answer", "too_few_steps", "unfinished_thinking",
                       "empty_answer", "no_final_answer", "speaks_of_feedback",
                       # a proposal (input, rewrite) that cannot be read
                       "bad_input", "no_program", "bad_program", "same_program"})

_ASK = {
    "wrong_step": "Your reasoning has a wrong step: {detail}.",
    "wrong_answer": "Your final answer is wrong: you {detail}.",
    "too_few_steps": "Your reasoning skips too much of the run: {detail}. Tell each change of "
                     "a value as it happens.",
    "unfinished_thinking": "Your answer was cut at the token limit before it finished. Think "
                           "more briefly.",
    "empty_answer": "Your answer is empty after the thinking.",
    "no_final_answer": "Your answer does not end as asked: {detail}.",
    "speaks_of_feedback": "Your answer speaks of an earlier attempt ({detail}).",
}
_AGAIN = ("Reason through the run again from the start, right at every step, and end with the "
          "final answer line as asked before. Write it as a fresh answer: do not mention this "
          "message or an earlier attempt.")

# a revision that speaks of the feedback is not a reasoning to train on
SPEAKS_OF_FEEDBACK = re.compile(
    r"\b(?:(?:my|the) (?:earlier|previous|first|last) (?:answer|attempt|reasoning|response)"
    r"|you(?:'re| are) (?:right|correct)|as you (?:said|pointed out|noted|mentioned)"
    r"|i apologi[sz]e|(?:i )?made (?:a|an) (?:mistake|error)|corrected (?:reasoning|answer|version)"
    r"|the feedback|this message)\b", re.IGNORECASE)


def attempt_of(item: dict) -> int:
    """Which attempt an item's request is: 1 for the first, 2 for the first revision..."""
    return 1 + len(item.get(ATTEMPTS) or ())


def conversation(item: dict, prompt: str) -> list[dict]:
    """The chat messages of an item's request: the prompt, then the revision turns."""
    return [{"role": "user", "content": prompt}, *(item.get(TURNS) or ())]


def feedback(reason: str, detail: str) -> str:
    """The user turn that sends a rejected generation back: what failed, then the ask."""
    ask = _ASK.get(reason, "Your answer was rejected ({reason}: {detail}).")
    return ask.format(reason=reason, detail=detail.rstrip(". ")) + " " + _AGAIN


def shown_answer(generation: str) -> str:
    """The assistant turn sent back: the answer after the thinking (chat templates drop an
    earlier turn's thinking anyway), or a note where the thinking never finished."""
    if THINK_END in generation:
        return generation.split(THINK_END, 1)[1].strip()
    if generation.lstrip().startswith("<think>"):
        return "(cut at the token limit)"
    return generation


def revised(item: dict, generation: str, reason: str, detail: str) -> dict:
    """The item's next request: its conversation with this answer and the feedback added."""
    turns = [*(item.get(TURNS) or ()), {"role": "assistant", "content": shown_answer(generation)},
             {"role": "user", "content": feedback(reason, detail)}]
    return {**item, TURNS: turns, ATTEMPTS: [*(item.get(ATTEMPTS) or ()), f"{reason}: {detail}"]}


def every_attempt(item: dict, reason: str, detail: str, limit: int = 500) -> str:
    """One reject's detail naming each attempt's reason (the last one's here)."""
    earlier = item.get(ATTEMPTS) or ()
    if not earlier:
        return detail[:limit]
    told = [f"attempt {i}: {text}" for i, text in enumerate([*earlier, f"{reason}: {detail}"], 1)]
    share = max(40, limit // len(told))
    return "; ".join(text[:share] for text in told)[:limit]


def without_conversation(item: dict) -> dict:
    """The item as the first attempt saw it (what translations and examples are built from)."""
    return {k: v for k, v in item.items() if k not in (TURNS, ATTEMPTS)}
