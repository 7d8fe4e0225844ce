"""Training examples in LLaMA-Factory's ``messages`` shape, and the files that describe them.

A training example is one conversation: the user turn is the training prompt (question, code,
input; no trace), the assistant turn is the verified reasoning (the text after ``</think>``).
Where the reasoning goes (``reasoning_in``): ``answer``, the visible answer, as the reference
scripts do (for a template without thinking: LLaMA-Factory's ``qwen3_nothink``), or ``think``,
inside ``<think>...</think>`` with the final-answer line after it, the layout a thinking model
is trained on (LLaMA-Factory's ``qwen3``, which otherwise trains an empty think block). With a
tokenizer of the model to be trained, examples longer than the cap are rejected by token count
(the reference counted characters); without one, their length in characters is counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from trace_workers.stream import Reject
from translate.answer import THINK_END, THINK_START
from translate.prompts import FINAL_ANSWER_MARK
from translate.tasks import training_prompt

REASONING_IN = {"answer": "qwen3_nothink", "think": "qwen3"}  # layout -> LLaMA-Factory template


@dataclass
class BuildSettings:
    trained_tokenizer: str | None = None  # tokenizer (folder or model id) of the model to train
    max_training_tokens: int = 8192
    reasoning_in: str = "answer"  # where the assistant turn puts the reasoning (see the module)

    def __post_init__(self) -> None:
        if self.reasoning_in not in REASONING_IN:
            raise ValueError(f"reasoning_in must be one of {', '.join(REASONING_IN)}, "
                             f"not {self.reasoning_in!r}")


@lru_cache(maxsize=4)
def load_tokenizer(name: str) -> Any:
    """A model's tokenizer (folder or model id), loaded once per worker process."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def count_tokens(messages: list[dict], tokenizer_name: str) -> int:
    """Tokens of the conversation as the trained model will see it (its chat template)."""
    tokenizer = load_tokenizer(tokenizer_name)
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # a BatchEncoding
            ids = ids["input_ids"]
        return len(ids)
    return sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in messages)


def assistant_turn(answer_text: str, reasoning_in: str) -> str:
    """The assistant's content: the reasoning as its answer, or inside a think block with the
    answer after it (from the last final-answer line on; without one, the last paragraph)."""
    if reasoning_in == "answer":
        return answer_text
    text = answer_text.strip()
    lines = text.split("\n")
    marked = [i for i, line in enumerate(lines) if line.lstrip(" >*#_-").lower().startswith(
        FINAL_ANSWER_MARK.lower())]
    if marked:
        reasoning, answer = "\n".join(lines[:marked[-1]]), "\n".join(lines[marked[-1]:])
    else:
        reasoning, _, answer = text.rpartition("\n\n")
    return f"{THINK_START}\n{reasoning.strip()}\n{THINK_END}\n\n{answer.strip()}"


def training_example(trace: dict, answer_text: str, cfg: BuildSettings) -> dict | Reject:
    messages = [
        {"role": "user", "content": training_prompt(trace)},
        {"role": "assistant", "content": assistant_turn(answer_text, cfg.reasoning_in)},
    ]
    tokens = None
    if cfg.trained_tokenizer:
        tokens = count_tokens(messages, cfg.trained_tokenizer)
        if tokens > cfg.max_training_tokens:
            return Reject(trace["id"], trace["problem_id"], "build", "too_many_tokens",
                          f"{tokens} tokens (limit {cfg.max_training_tokens})")
    return {"id": trace["id"], "problem_id": trace["problem_id"], "task": trace.get("task") or "output",
            "messages": messages, "tokens": tokens}


LENGTH_EDGES = (512, 1024, 2048, 4096, 8192, 16384, 32768)


def example_length(example: dict) -> tuple[str, int]:
    """(unit, length) of a training example: its tokens in the trained model's chat template
    when a tokenizer was given, else the characters of its turns."""
    if example.get("tokens") is not None:
        return "tokens", int(example["tokens"])
    return "characters", sum(len(m["content"]) for m in example["messages"])


def length_bin(length: int) -> str:
    """The histogram bin of a length: "<512", "512-1024", ..., ">=32768"."""
    low = 0
    for edge in LENGTH_EDGES:
        if length < edge:
            return f"<{edge}" if low == 0 else f"{low}-{edge}"
        low = edge
    return f">={LENGTH_EDGES[-1]}"


def dataset_info(name: str = "groundtrace", reasoning_in: str = "answer") -> dict:
    """LLaMA-Factory's dataset_info.json entries for the JSONL and the Parquet shards; each
    names its layout and the template that trains it as laid out (a key LLaMA-Factory does
    not read: its ``template`` is a training argument)."""
    columns = {"messages": "messages"}
    tags = {"role_tag": "role", "content_tag": "content",
            "user_tag": "user", "assistant_tag": "assistant"}
    layout = {"reasoning_in": reasoning_in, "llamafactory_template": REASONING_IN[reasoning_in]}
    return {
        name: {"file_name": "messages", "formatting": "sharegpt", "columns": columns, "tags": tags,
               "groundtrace": layout},
        f"{name}_parquet": {"file_name": "parquet", "formatting": "sharegpt",
                            "columns": columns, "tags": tags, "groundtrace": layout},
    }
