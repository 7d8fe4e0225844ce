"""Training examples in LLaMA-Factory's ``messages`` shape, and the files that describe them.

A training example is one conversation: the user turn is the training prompt (question, code,
input; no trace), the assistant turn is the verified reasoning (the text after ``</think>``).
With a tokenizer of the model to be trained, examples longer than the cap are rejected by
token count (the reference counted characters).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from trace_workers.stream import Reject
from translate.tasks import training_prompt


@dataclass
class BuildSettings:
    trained_tokenizer: str | None = None  # tokenizer (folder or model id) of the model to train
    max_training_tokens: int = 8192


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


def training_example(trace: dict, answer_text: str, cfg: BuildSettings) -> dict | Reject:
    messages = [
        {"role": "user", "content": training_prompt(trace)},
        {"role": "assistant", "content": answer_text},
    ]
    tokens = None
    if cfg.trained_tokenizer:
        tokens = count_tokens(messages, cfg.trained_tokenizer)
        if tokens > cfg.max_training_tokens:
            return Reject(trace["id"], trace["problem_id"], "build", "too_many_tokens",
                          f"{tokens} tokens (limit {cfg.max_training_tokens})")
    return {"id": trace["id"], "problem_id": trace["problem_id"], "task": trace.get("task") or "output",
            "messages": messages, "tokens": tokens}


def dataset_info(name: str = "groundtrace") -> dict:
    """LLaMA-Factory's dataset_info.json entries for the JSONL and the Parquet shards."""
    columns = {"messages": "messages"}
    tags = {"role_tag": "role", "content_tag": "content",
            "user_tag": "user", "assistant_tag": "assistant"}
    return {
        name: {"file_name": "messages", "formatting": "sharegpt", "columns": columns, "tags": tags},
        f"{name}_parquet": {"file_name": "parquet", "formatting": "sharegpt",
                            "columns": columns, "tags": tags},
    }
