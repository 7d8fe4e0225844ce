"""The endpoint translator: an OpenAI-compatible chat-completions server (a team's vLLM or
SGLang, a hosted model) through ``ray.data.llm``'s HTTP request processor.

The same prompts, tasks and verification as the engine translator (``translate.llm``); what
differs is where a prompt goes. :func:`make_preprocess` writes each ``request`` row's chat
request (the row's stream payload is kept aside, rows the endpoint must not see bypass it as
in ``translate.llm``); the processor's stage sends them through ``translate.http_session``;
:func:`postprocess` reads the answer: the text (with the thinking the server split out into
``reasoning``/``reasoning_content`` put back in front, inside ``<think>``), the token counts of
``usage``, or a ``translate_reject`` (``endpoint_error``, with the status) for a request that
failed for good. :func:`check_endpoint` asks once before the job starts, so a wrong URL, key or
model is one line instead of a run of rejects.

The API key comes from an environment variable named by ``key_env``, is read by the driver
only, and travels to the stage's actors inside the session factory; it is not a setting, so it
reaches neither the manifest nor the report, and the jail's environment is cleared anyway.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from trace_workers.stream import REQUEST, utf8_safe
from translate.early_stop import watch_of
from translate.http_session import (
    EARLY_STOP,
    WATCH,
    ContextFit,
    EndpointSessionFactory,
    RequestPolicy,
    outcome,
)
from translate.llm import LLMSettings, row_seed
from translate.revision import attempt_of, conversation
from translate.stage import PASSTHROUGH, PROMPT_REJECT
from translate.tasks import translation_prompt

# the rows the endpoint must not see keep every field too: Arrow wants one schema
_EMPTY = {"__inference_error__": "", "stream_payload": ""}


class EndpointRefused(RuntimeError):
    """The endpoint refuses the job's requests (URL, key, model or a limit it will not take)."""


@dataclass
class EndpointSettings:
    url: str  # the API's base (http://host:8000/v1) or its chat-completions URL
    model: str  # the served model's name
    key_env: str = "OPENAI_API_KEY"
    # None: each request asks for what the served context leaves after its prompt, at most
    # fit_cap (translate.http_session.ContextFit); a number: exactly that, checked beforehand
    max_tokens: int | None = None
    fit_cap: int = LLMSettings.max_tokens
    temperature: float = LLMSettings.temperature
    top_p: float = LLMSettings.top_p
    seed: int | None = 0  # None: no seed sent
    enable_thinking: bool = LLMSettings.enable_thinking
    body: dict[str, Any] = field(default_factory=dict)  # more request fields (top_k, chat_template_kwargs...)
    # stream each answer and stop it at its first wrong step (translate/early_stop.py)
    early_stop: bool = True
    rel_tol: float = 1e-6  # the step check's, for the early stop
    batch_size: int = 32
    actors: int = 1
    policy: RequestPolicy = field(default_factory=RequestPolicy)

    @property
    def chat_url(self) -> str:
        return chat_url(self.url)

    def api_key(self) -> str | None:
        return os.environ.get(self.key_env) or None

    def request(self, row_id: str, messages: str | list[dict]) -> dict[str, Any]:
        """The chat request of one item (``messages``: a prompt, or the whole conversation)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        body = {"model": self.model, "messages": messages,
                "temperature": self.temperature, "top_p": self.top_p}
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.seed is not None:
            body["seed"] = row_seed(self.seed, row_id)
        return {**body, **self.body}


def chat_url(url: str) -> str:
    """``.../chat/completions`` for a base URL (``http://host:8000`` means ``/v1``)."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    if not urlsplit(url).path:
        url += "/v1"
    return url + "/chat/completions"


def public_endpoint(url: str) -> str:
    """Scheme and host (and port) only: what the manifest and report say made the data."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def make_preprocess(cfg: EndpointSettings):
    def preprocess(row: dict) -> dict:
        if row["kind"] != REQUEST:
            return {**_EMPTY, "__inference_error__": PASSTHROUGH}
        item = json.loads(row["payload"])
        try:
            messages = utf8_safe(conversation(item, translation_prompt(item)))
        except Exception as exc:  # an item no prompt can be made of is one reject
            return {**_EMPTY, "__inference_error__": (
                f"{PROMPT_REJECT}prompt_failed:{type(exc).__name__}: {exc}"[:400])}
        # a revision's own seed: the same conversation asked again would be the same draw
        seed_key = item["id"] if attempt_of(item) == 1 else f"{item['id']}#{attempt_of(item)}"
        body = cfg.request(seed_key, messages)
        watch = watch_of(item, cfg.enable_thinking, cfg.rel_tol) if cfg.early_stop else None
        if watch is not None:  # the session takes the watch out and reads the stream with it
            body = {**body, "stream": True, "stream_options": {"include_usage": True}, WATCH: watch}
        return {**_EMPTY, "stream_payload": row["payload"],
                "payload": json.dumps(body, ensure_ascii=False)}

    return preprocess


def generation_of(answer: dict) -> str | None:
    """The generated text of a chat completion, thinking first: servers that split thinking out
    (vLLM's and SGLang's reasoning parsers) answer ``reasoning``/``reasoning_content``, and a
    thinking that did not finish leaves ``content`` empty. None: not a chat completion."""
    choices = answer.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices else None
    if not isinstance(message, dict):
        return None
    content = _text(message.get("content"))
    thinking = next((message[k] for k in ("reasoning_content", "reasoning")
                     if isinstance(message.get(k), str)), None)
    if thinking is None:
        return content or ""  # a model may stop at once: empty text, which verify rejects
    return f"<think>\n{thinking}" + ("" if content is None else f"\n</think>\n\n{content}")


def length_cut(answer: dict) -> bool:
    """Whether the server stopped the answer at its token limit (``finish_reason: length``)."""
    choices = answer.get("choices")
    return bool(isinstance(choices, list) and choices and isinstance(choices[0], dict)
                and choices[0].get("finish_reason") == "length")


def _text(content) -> str | None:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return str(content)


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def postprocess(row: dict) -> dict:
    """The answer of one request: its text and token counts, or why there is none."""
    result = row.get("http_response") or outcome(0, error="no answer")
    text, usage, reject, cut, stop = None, {}, "", False, ""
    if result.get("status") == 200:
        try:
            answer = json.loads(result["body"])
            text, usage, cut = generation_of(answer), answer.get("usage"), length_cut(answer)
            stop = str(answer.get(EARLY_STOP) or "")
        except (ValueError, AttributeError, TypeError) as exc:
            reject = f"endpoint_error:HTTP 200 with an answer that is not a chat completion ({exc})"
        if text is None and not reject:
            reject = "endpoint_error:HTTP 200 with an answer that is not a chat completion"
    else:
        tries = result.get("attempts") or 1
        reject = f"endpoint_error:{result.get('error')}" + (f" (after {tries} attempts)" if tries > 1 else "")
    usage = usage if isinstance(usage, dict) else {}
    return {"kind": row["kind"], "payload": row["stream_payload"], "block": row.get("block"),
            "generated_text": text, "translate_reject": f"{PROMPT_REJECT}{reject}"[:500] if reject else "",
            "num_input_tokens": _count(usage.get("prompt_tokens")),
            "num_generated_tokens": _count(usage.get("completion_tokens")), "length_cut": cut,
            "early_stop": stop[:400]}


def processor_config(cfg: EndpointSettings, api_key: str | None = None):
    from ray.data.llm import HttpRequestProcessorConfig

    return HttpRequestProcessorConfig(
        url=cfg.chat_url, batch_size=cfg.batch_size, concurrency=cfg.actors,
        session_factory=EndpointSessionFactory(_share(cfg), api_key, context_fit(cfg)))


def context_fit(cfg: EndpointSettings) -> ContextFit | None:
    """How requests without --max-tokens are fitted to the served context (None: given)."""
    if cfg.max_tokens is not None:
        return None
    api = cfg.chat_url[: -len("/chat/completions")]  # http://host:8000/v1
    root = api[: -len("/v1")] if api.endswith("/v1") else api
    return ContextFit(tokenize_urls=(root + "/tokenize", api + "/tokenize"), cap=cfg.fit_cap)


def _share(cfg: EndpointSettings) -> RequestPolicy:
    """Each actor's part of the job's concurrency and rate."""
    p, n = cfg.policy, max(1, cfg.actors)
    return replace(p, concurrency=max(1, -(-p.concurrency // n)), qps=p.qps / n if p.qps else None)


def build_endpoint_processor(cfg: EndpointSettings):
    """The Processor: apply it to the tagged stream (``processor(dataset)``)."""
    from ray.data import ActorPoolStrategy
    from ray.data.llm import build_processor

    processor = build_processor(processor_config(cfg, cfg.api_key()),
                                preprocess=make_preprocess(cfg), postprocess=postprocess)
    for stage in processor.stages.values():
        # a fixed pool, and enough batches queued per actor for its requests to overlap: the
        # stage runs four batches of one actor at once, each holding its stragglers until done
        stage.map_batches_kwargs["compute"] = ActorPoolStrategy(
            size=max(1, cfg.actors), max_tasks_in_flight_per_actor=8)
    return processor


def check_endpoint(cfg: EndpointSettings, timeout_s: float = 60.0) -> str:
    """One small request before the job: an endpoint that cannot be reached, refuses the key or
    does not serve the model raises EndpointRefused with its own words. Returns what it found."""
    return asyncio.run(_check(cfg, timeout_s))


async def _check(cfg: EndpointSettings, timeout_s: float) -> str:
    policy = RequestPolicy(concurrency=1, timeout_s=timeout_s, retries=3, backoff_s=1.0)
    where = public_endpoint(cfg.url)
    probe = {**cfg.request("groundtrace-check", "Say OK."), "max_tokens": 1}
    async with EndpointSessionFactory(policy, cfg.api_key())() as session:
        result = await session.attempts(cfg.chat_url, json.dumps(probe))
        if result["status"] in (401, 403):
            raise EndpointRefused(f"the endpoint {where} refused the API key in ${cfg.key_env} "
                                  f"({result['error']})")
        if result["status"] not in (200, 429):  # a rate limit is an endpoint that exists
            why = result["error"] or f"HTTP {result['status']}"
            raise EndpointRefused(f"the endpoint {cfg.chat_url} does not take a chat request for "
                                  f"model {cfg.model!r}: {why}")
        context = await _served_context(session, cfg)
    if context and cfg.max_tokens is not None and cfg.max_tokens >= context:
        raise EndpointRefused(f"--max-tokens {cfg.max_tokens} does not fit {cfg.model!r}'s context "
                              f"at {where} ({context} tokens); pass less")
    return f"{where} serves {cfg.model}" + (f" ({context}-token context)" if context else "")


async def _served_context(session, cfg: EndpointSettings) -> int | None:
    """The model's context as vLLM and SGLang list it under ``/models`` (hosted APIs do not)."""
    url = cfg.chat_url[: -len("/chat/completions")] + "/models"
    try:
        async with session.session.get(url, headers=session.headers) as response:
            listing = await response.json(content_type=None)
        for model in listing.get("data") or []:
            if model.get("id") == cfg.model and isinstance(model.get("max_model_len"), int):
                return model["max_model_len"]
    except Exception:  # noqa: BLE001 - a listing is a courtesy: without it, nothing is checked
        return None
    return None
