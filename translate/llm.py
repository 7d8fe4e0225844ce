"""The LLM translator: vLLM engine actors through ``ray.data.llm``.

Config -> builder -> pre/postprocess, as ``ray.data.llm`` separates them:

- :class:`LLMSettings` holds the engine and sampling settings (from the job's config);
- :func:`build_llm_processor` turns them into a ``vLLMEngineProcessorConfig`` and a Processor;
- :func:`preprocess` builds the prompt of a ``request`` row with the model's chat template
  (thinking on), counts its tokens with the model's tokenizer and rejects a prompt that cannot
  fit ``max_model_len`` before it reaches the GPU; :func:`postprocess` keeps the generation.

The stream also carries rows the engine must not see (traces to write, rejects, counters).
They cross the processor marked like rows that failed: ``ray.data.llm`` lets rows whose
``__inference_error__`` is set bypass every stage, untouched, and :func:`translate.stage.
verify_batch` restores them. The processor's own chat-template and tokenize stages are off:
``preprocess`` already has the token ids it needed to count.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from trace_workers.stream import REQUEST, utf8_safe
from translate.export import load_tokenizer
from translate.revision import attempt_of, conversation
from translate.stage import PASSTHROUGH, PROMPT_REJECT
from translate.tasks import translation_prompt

# Rows must all have the same fields, or Arrow fills the missing ones with nulls, and a null
# __inference_error__ would read as an error.
_EMPTY = {"__inference_error__": "", "tokenized_prompt": []}


@dataclass
class LLMSettings:
    model: str
    device: str = "gpu"  # "cpu": vLLM's CPU backend (tests, laptops); "gpu": one engine per replica
    max_model_len: int = 40960
    max_tokens: int = 16384
    min_new_tokens: int = 256  # a prompt must leave at least this much room for the answer
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    min_p: float = 0.0
    seed: int = 0
    enable_thinking: bool = True
    ignore_eos: bool = False  # generate exactly max_tokens (benchmarks: fixed output lengths)
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    max_num_seqs: int = 256
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = False
    load_format: str | None = None  # "dummy": random weights, for benchmarks without a hub
    accelerator_type: str | None = None
    replicas: int = 1
    batch_size: int = 64
    max_engine_restarts: int = 3  # an engine replica that dies is started again this often
    engine_extra: dict[str, Any] = field(default_factory=dict)

    def sampling_params(self, row_id: str, max_tokens: int) -> dict:
        params = {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                  "min_p": self.min_p, "max_tokens": max_tokens, "ignore_eos": self.ignore_eos}
        if self.device == "gpu":
            # vLLM's CPU backend dies on per-request seeds ("CPU Generator does not use
            # offset"); there the engine's own seed makes runs repeatable instead.
            params["seed"] = row_seed(self.seed, row_id)
        return params


CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")


class ModelContextError(ValueError):
    """A --max-model-len the model cannot take, or a model whose context cannot be read."""


def model_context(model: str) -> int | None:
    """The model's own context length, from its config (None when the config names none)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model)
    config = getattr(config, "text_config", None) or config  # multimodal models nest it
    for name in CONTEXT_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def resolve_max_model_len(model: str, requested: int | None) -> int:
    """``--max-model-len``, or by default the model's own context; a value longer than the
    model's is refused before anything starts (vLLM would stop later with a long traceback)."""
    try:
        context = model_context(model)
    except Exception as exc:  # noqa: BLE001 - a config that cannot be read: say so, in one line
        if requested:
            return requested  # the engine's nodes may read what this one cannot
        raise ModelContextError(f"cannot read the context length of {model} ({type(exc).__name__}: "
                                f"{str(exc)[:200]}); pass --max-model-len") from None
    if requested is None:
        if context is None:
            raise ModelContextError(f"{model}'s config gives no context length; pass --max-model-len")
        return context
    if context is not None and requested > context:
        raise ModelContextError(f"--max-model-len {requested} is longer than {model}'s context "
                                f"({context} tokens); pass {context} or less")
    return requested


def row_seed(seed: int, row_id: str) -> int:
    """A per-request seed: reproducible, independent of batching and order."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{row_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def prompt_token_ids(trace: dict, cfg: LLMSettings) -> list[int]:
    """The token ids of an item's request: its prompt, and a revision's conversation."""
    tokenizer = load_tokenizer(cfg.model)
    text = tokenizer.apply_chat_template(
        utf8_safe(conversation(trace, translation_prompt(trace))), tokenize=False,
        add_generation_prompt=True, enable_thinking=cfg.enable_thinking,
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def make_preprocess(cfg: LLMSettings):
    placeholder = cfg.sampling_params("", 1)

    def preprocess(row: dict) -> dict:
        if row["kind"] != REQUEST:
            return {**_EMPTY, "__inference_error__": PASSTHROUGH, "sampling_params": placeholder}
        trace = json.loads(row["payload"])
        try:
            ids = prompt_token_ids(trace, cfg)
        except Exception as exc:  # a prompt the tokenizer cannot take is one reject
            return {**_EMPTY, "sampling_params": placeholder,
                    "__inference_error__": f"{PROMPT_REJECT}prompt_failed:{type(exc).__name__}: {exc}"[:400]}
        room = cfg.max_model_len - len(ids)
        if room < cfg.min_new_tokens:
            return {**_EMPTY, "sampling_params": placeholder, "__inference_error__": (
                f"{PROMPT_REJECT}prompt_too_long:{len(ids)} prompt tokens leave {max(room, 0)} of "
                f"max_model_len {cfg.max_model_len} (need {cfg.min_new_tokens})")}
        seed_key = trace["id"] if attempt_of(trace) == 1 else f"{trace['id']}#{attempt_of(trace)}"
        return {**_EMPTY, "tokenized_prompt": ids,
                "sampling_params": cfg.sampling_params(seed_key, min(cfg.max_tokens, room))}

    return preprocess


def postprocess(row: dict) -> dict:
    asked = (row.get("sampling_params") or {}).get("max_tokens")
    generated = row.get("num_generated_tokens")
    return {"kind": row["kind"], "payload": row["payload"], "block": row.get("block"),
            "generated_text": row.get("generated_text"),
            "num_input_tokens": row.get("num_input_tokens"),
            "num_generated_tokens": generated,
            # the generation stopped at its token limit, not at its end
            "length_cut": bool(asked and generated and generated >= asked)}


def engine_kwargs(cfg: LLMSettings) -> dict:
    kwargs = {
        "dtype": cfg.dtype, "max_model_len": cfg.max_model_len, "max_num_seqs": cfg.max_num_seqs,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "pipeline_parallel_size": cfg.pipeline_parallel_size,
        "enforce_eager": cfg.enforce_eager, "seed": cfg.seed,
    }
    if cfg.device == "gpu":
        kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
    if cfg.load_format:
        kwargs["load_format"] = cfg.load_format
    return {**kwargs, **cfg.engine_extra}


def processor_config(cfg: LLMSettings):
    from ray.data.llm import vLLMEngineProcessorConfig

    extra: dict[str, Any] = {}
    if cfg.device == "cpu":
        # Without CPU bundles the engine stage asks for a GPU and waits forever.
        workers = cfg.tensor_parallel_size * cfg.pipeline_parallel_size
        extra["placement_group_config"] = {"bundles": [{"CPU": 1}] * workers}
        extra["runtime_env"] = {"env_vars": {
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "VLLM_ENABLE_V1_MULTIPROCESSING": os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "0"),
        }}
    elif cfg.accelerator_type:
        extra["accelerator_type"] = cfg.accelerator_type
    # Enough batches in flight per engine to keep its max_num_seqs busy: with fewer, the
    # engine idles between batches (ray.data.llm warns below batch_size x batches = 4 x seqs).
    in_flight = max(8, -(-4 * cfg.max_num_seqs // cfg.batch_size))
    return vLLMEngineProcessorConfig(
        model_source=cfg.model, engine_kwargs=engine_kwargs(cfg), batch_size=cfg.batch_size,
        max_concurrent_batches=in_flight,
        concurrency=cfg.replicas, should_continue_on_error=True, log_engine_metrics=False,
        chat_template_stage=False, tokenize_stage=False, detokenize_stage=False, **extra,
    )


def build_llm_processor(cfg: LLMSettings):
    """The Processor: apply it to the tagged stream (``processor(dataset)``)."""
    from ray.data.llm import build_processor

    processor = build_processor(processor_config(cfg), preprocess=make_preprocess(cfg),
                                postprocess=postprocess)
    # ray.data.llm restarts an engine actor whose engine died (a killed process, a CUDA
    # error) without end: bound it, so that an engine that keeps dying ends the job (with
    # one line, and an output the same command resumes) instead of running forever
    for stage in processor.stages.values():
        if "vLLMEngine" in type(stage).__name__:
            stage.map_batches_kwargs["max_restarts"] = cfg.max_engine_restarts
    return processor
