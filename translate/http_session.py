"""The HTTP transport under ray.data.llm's HTTP request stage: concurrency, rate, retries.

``ray.data.llm``'s ``HttpRequestUDF`` opens ``session_factory()`` once per batch, calls
``session.post(url, headers=..., data=...)`` for every row of the batch, then awaits each in
turn (``async with await request as response``) and reads ``response.json()``. Its own policy
does not fit a long job on an endpoint: requests of a batch go one after another, 500s and
``Retry-After`` are not honoured, there is no per-request timeout, and a request that keeps
failing raises, which fails the whole batch. So the factory passed to it returns an
:class:`EndpointSession`, whose ``post`` starts the request at once (bounded by the process's
share of ``--endpoint-concurrency`` and ``--endpoint-qps``), retries what waiting can cure, and
always answers 200 with a small JSON record of the outcome (:func:`outcome`): the stage then
neither retries nor raises, and the job turns a request that failed for good into one reject.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from translate.early_stop import StepWatch

RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RequestPolicy:
    """How this process talks to the endpoint (its share of the job's limits)."""

    concurrency: int = 32  # requests in flight at once
    qps: float | None = None  # requests started per second, at most
    timeout_s: float = 600.0  # one attempt, connection to last byte
    # attempts after the first, for 429/5xx, timeouts and lost connections: with the backoff,
    # up to about 4 minutes (2 on average), which a server's restart fits in
    retries: int = 8
    backoff_s: float = 1.0  # the first wait; doubled per attempt, with full jitter
    max_wait_s: float = 120.0  # the longest wait, Retry-After included


class _Limiter:
    """Concurrency and start rate of one process (one per event loop)."""

    def __init__(self, policy: RequestPolicy):
        self.slots = asyncio.Semaphore(max(1, policy.concurrency))
        self.interval = 1.0 / policy.qps if policy.qps else 0.0
        self.next_start = 0.0
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        await self.slots.acquire()
        if not self.interval:
            return
        async with self.lock:
            now = time.monotonic()
            wait, self.next_start = self.next_start - now, max(now, self.next_start) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


_LIMITERS: dict[tuple[int, RequestPolicy], _Limiter] = {}


def _limiter(policy: RequestPolicy) -> _Limiter:
    key = (id(asyncio.get_running_loop()), policy)
    if key not in _LIMITERS:
        _LIMITERS[key] = _Limiter(policy)
    return _LIMITERS[key]


def retry_after_s(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def error_message(status: int, text: str) -> str:
    """The server's own message from an error body (OpenAI's ``{"error": {"message"}}``, vLLM's
    ``{"message"}``), else the start of the body."""
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:300] or f"HTTP {status}"
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message") or error
    return str(error)[:300]


def outcome(status: int, body: str = "", error: str = "", attempts: int = 1) -> dict[str, Any]:
    """What the stage hands on for one request: the server's status and body (the body when it
    answered 200), or the error that ended it. Flat, so that Arrow keeps one schema."""
    return {"status": status, "body": body, "error": error, "attempts": attempts}


class _Answer:
    """The response object ray.data.llm's stage reads: always 200, the outcome as JSON."""

    status = 200
    reason = "OK"

    def __init__(self, record: dict[str, Any]):
        self.record = record

    async def json(self) -> dict[str, Any]:
        return self.record

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc) -> None:
        return None


def request_text(data: Any) -> str:
    """The request body: the stage JSON-encodes the row's ``payload``, which the job keeps as
    JSON text (one string column through Arrow), so the text inside is the body to send."""
    if isinstance(data, str):
        try:
            inner = json.loads(data)
        except ValueError:
            return data
        if isinstance(inner, str):
            return inner
    return data


@dataclass(frozen=True)
class ContextFit:
    """Requests sent without ``max_tokens`` ask for at most ``cap`` tokens and at most what the
    served context leaves after their prompt: the server's own count, from the ``/tokenize``
    route vLLM (and SGLang) serve beside ``/v1``. A server without it gets the request without
    ``max_tokens`` and fills the context itself, as vLLM does."""

    tokenize_urls: tuple[str, ...]
    cap: int


# per process: the tokenize routes that are absent or refused (not asked again)
_NO_TOKENIZE: set[str] = set()


class EndpointSession:
    """A stand-in for ``aiohttp.ClientSession`` with the job's request policy."""

    def __init__(self, policy: RequestPolicy, headers: dict[str, str], fit: ContextFit | None = None):
        self.policy = policy
        self.headers = headers
        self.fit = fit
        self.session = None

    async def __aenter__(self) -> EndpointSession:
        import aiohttp

        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.policy.timeout_s),
            connector=aiohttp.TCPConnector(limit=max(1, self.policy.concurrency)))
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    def post(self, url: str, headers: dict | None = None, data: Any = None) -> asyncio.Task:
        """Start the request now (the stage awaits requests one after another)."""
        return asyncio.ensure_future(self.send(url, request_text(data), headers))

    async def send(self, url: str, body: str, headers: dict | None = None) -> _Answer:
        body, watch = watched(body)
        if self.fit is not None:
            body = await self.fitted(body)
        return _Answer(await self.attempts(url, body, headers, watch))

    async def fitted(self, body: str) -> str:
        """The request with the ``max_tokens`` its prompt leaves room for (see ContextFit)."""
        request = json.loads(body)
        if "max_tokens" in request or "max_completion_tokens" in request:
            return body
        ask = {"model": request.get("model"), "messages": request.get("messages"),
               "add_generation_prompt": True}
        if isinstance(request.get("chat_template_kwargs"), dict):
            ask["chat_template_kwargs"] = request["chat_template_kwargs"]
        headers = {**self.headers, "Content-Type": "application/json"}
        for url in self.fit.tokenize_urls:
            if url in _NO_TOKENIZE:
                continue
            try:
                async with self.session.post(url, data=json.dumps(ask).encode(),
                                             headers=headers) as response:
                    if response.status in (401, 403, 404, 405):
                        _NO_TOKENIZE.add(url)
                        continue
                    counted = await response.json(content_type=None) if response.status == 200 else {}
            except Exception:  # noqa: BLE001 - counting is a courtesy: the server still decides
                return body
            if not isinstance(counted, dict):
                return body
            count, context = counted.get("count"), counted.get("max_model_len")
            if isinstance(count, int) and isinstance(context, int) and context > count:
                request["max_tokens"] = min(self.fit.cap, context - count)
                return json.dumps(request)
            return body
        return body

    async def attempts(self, url: str, body: str, headers: dict | None = None,
                       watch: dict | None = None) -> dict[str, Any]:
        """Send one request until it is answered, fails for good, or runs out of tries. A
        streamed request is read as it arrives (``watch``: stopped at its first wrong step)."""
        import aiohttp

        headers = {**(headers or {}), **self.headers, "Content-Type": "application/json"}
        policy, limiter = self.policy, _limiter(self.policy)
        last = outcome(0, error="not sent")
        for attempt in range(policy.retries + 1):
            wait = None
            await limiter.start()
            try:
                async with self.session.post(url, data=body.encode(), headers=headers) as response:
                    status = response.status
                    wait = retry_after_s(response.headers.get("Retry-After"))
                    if status == 200 and response.content_type == "text/event-stream":
                        text = await read_stream(response, StepWatch(**watch) if watch else None)
                    else:
                        text = await response.text(errors="replace")
            except TimeoutError:
                last = outcome(0, error=f"no answer within {policy.timeout_s:g} s", attempts=attempt + 1)
            except (aiohttp.ClientError, OSError, StreamBroken) as exc:
                last = outcome(0, error=f"{type(exc).__name__}: {exc}"[:300], attempts=attempt + 1)
            except Exception as exc:  # noqa: BLE001 - anything else ends this request, not the batch
                return outcome(0, error=f"{type(exc).__name__}: {exc}"[:300], attempts=attempt + 1)
            else:
                if status == 200:
                    return outcome(status, body=text, attempts=attempt + 1)
                last = outcome(status, error=f"HTTP {status}: {error_message(status, text)}",
                               attempts=attempt + 1)
                if status not in RETRYABLE:
                    return last
            finally:
                limiter.slots.release()
            if attempt < policy.retries:
                backoff = random.uniform(0, policy.backoff_s * 2 ** attempt)
                await asyncio.sleep(min(policy.max_wait_s, wait if wait is not None else backoff))
        return last


WATCH = "groundtrace_watch"  # the request's step watch, taken out before it is sent
EARLY_STOP = "groundtrace_early_stop"  # in an answer the watch stopped: the wrong step


def watched(body: str) -> tuple[str, dict | None]:
    """(the body to send, the step watch the job put in it, or None)."""
    if WATCH not in body:
        return body, None
    request = json.loads(body)
    watch = request.pop(WATCH, None)
    return json.dumps(request), watch


class StreamBroken(Exception):
    """A stream that ended in an error event or without its end: tried again as a lost answer."""


async def read_stream(response, watch: StepWatch | None) -> str:
    """A streamed chat completion (server-sent events) read to its end, or to the first wrong
    step the watch finds (the response is then closed, and the server stops generating), put
    back together as the one chat completion a request without streaming gets."""
    content: list[str] = []
    thinking: list[str] = []
    usage, finish, chunks, stop, done, said_any = None, None, 0, "", False, False
    async for raw in response.content:
        line = raw.decode("utf-8", "replace").strip()
        if not line.startswith("data:"):
            continue
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            done = True
            break
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            continue
        if chunk.get("error"):
            raise StreamBroken(f"the stream ended in an error: {error_message(500, data)}")
        usage = chunk.get("usage") or usage
        said = ""
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            said_any = said_any or bool(delta.get("content"))
            said = delta.get("content") or ""
            thought = delta.get("reasoning_content") or delta.get("reasoning") or ""
            chunks += bool(said or thought)
            content.append(said)
            thinking.append(thought)
            finish = choice.get("finish_reason") or finish
        if watch is not None and "\n" in said:
            stop = watch.wrong_step("".join(content))
            if stop:
                response.close()  # the server sees the client go and stops generating
                break
    if not stop and finish is None and not done:
        raise StreamBroken("the stream ended before its last event")
    message = {"role": "assistant", "content": "".join(content)}
    if any(thinking):
        message["reasoning_content"] = "".join(thinking)
        if not said_any:  # as a whole answer tells a thinking that never finished (vLLM)
            message["content"] = None
    counted = (usage or {}).get("completion_tokens")
    answer = {"object": "chat.completion",
              "choices": [{"index": 0, "message": message, "finish_reason": finish or "stop"}],
              # a stream stopped early has no usage of its end: its chunks are its tokens
              "usage": {**(usage or {}),
                        "completion_tokens": counted if isinstance(counted, int) else chunks}}
    if stop:
        answer[EARLY_STOP] = stop
    return json.dumps(answer)


class EndpointSessionFactory:
    """The ``session_factory`` of ``HttpRequestProcessorConfig``: pickled to the stage's actors,
    holding the API key, which its repr never shows."""

    def __init__(self, policy: RequestPolicy, api_key: str | None, fit: ContextFit | None = None):
        self.policy = policy
        self.fit = fit
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def __call__(self) -> EndpointSession:
        return EndpointSession(self.policy, self._headers, self.fit)

    def __repr__(self) -> str:
        return (f"EndpointSessionFactory({self.policy}, {self.fit}, "
                f"key={'set' if self._headers else 'none'})")
