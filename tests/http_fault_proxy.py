"""A fault-injecting HTTP proxy on loopback, in front of the tests' OpenAI-compatible server.

Every request is forwarded to the server unless ``plan(prompt, attempt)`` says otherwise for
that prompt's ``attempt``-th request (1, 2, ...): ``"429"`` (with ``Retry-After: 1``), ``"500"``,
``"stall"`` (the request is held and never answered), ``"answer:TEXT"`` (a chat completion
whose message is TEXT: a model that writes what the test wants) or ``"cut:TEXT"`` (the same,
stopped at the token limit; streamed as server-sent events when the request asks for a
stream). A revision's prompt is its whole conversation, its turns joined. With no ``target`` it is the
server itself: a request it is not told to answer gets 404 (the job's one-token check gets
"OK"). It records every chat request (its prompt, when it came, what it was answered), so a
test can tell what the job sent, how often, and how long it waited between tries.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from aiohttp import ClientSession, web

Plan = Callable[[str, int], str]


class HttpFaultProxy:
    def __init__(self, target: str | None, plan: Plan | None = None):
        self.target = target.rstrip("/") if target else None
        self.plan: Plan = plan or (lambda prompt, attempt: "pass")
        self.requests: list[tuple[str, float, str]] = []  # (prompt, time, what was answered)
        self.bodies: list[dict] = []  # each chat request as sent (the check's excepted)
        self.attempts: dict[str, int] = defaultdict(int)
        self.checks = 0  # the job's one-token request before it starts
        # streamed answers: words a second (0: as fast as it can), words sent in all, streams
        # sent to their end and streams the client stopped
        self.stream_rate = 0.0
        self.generated_tokens = 0
        self.finished_streams = 0
        self.stopped_streams = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def chat_requests(self, prompt: str | None = None) -> list[tuple[str, float, str]]:
        return [r for r in self.requests if prompt is None or r[0] == prompt]

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path.endswith("/chat/completions"):
            sent = json.loads(body)
            if sent.get("max_tokens") == 1:
                self.checks += 1
                if self.target is None:
                    return _completion(sent, "OK")
            else:
                prompt = _conversation(sent["messages"])
                self.bodies.append(sent)
                self.attempts[prompt] += 1
                action = self.plan(prompt, self.attempts[prompt])
                self.requests.append((prompt, time.monotonic(), action))
                if action == "429":
                    return web.json_response({"error": {"message": "slow down"}}, status=429,
                                             headers={"Retry-After": "1"})
                if action == "500":
                    return web.json_response({"error": {"message": "injected failure"}}, status=500)
                if action == "stall":  # held until the proxy closes
                    await self._closing.wait()
                    return web.Response(status=503)
                if action.startswith("answer:"):
                    if sent.get("stream"):
                        return await self._stream(request, action.removeprefix("answer:"))
                    words = len(action.removeprefix("answer:").split())
                    if self.stream_rate:  # generated at the same rate as a stream, sent whole
                        await asyncio.sleep(words / self.stream_rate)
                    self.generated_tokens += words
                    return _completion(sent, action.removeprefix("answer:"))
                if action.startswith("cut:"):  # stopped at the token limit
                    return _completion(sent, action.removeprefix("cut:"), "length")
        if self.target is None:
            return web.json_response({"error": {"message": "not served here"}}, status=404)
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with ClientSession() as session:
            async with session.request(request.method, self.target + request.path_qs, data=body,
                                       headers=headers) as answer:
                return web.Response(body=await answer.read(), status=answer.status,
                                    content_type=answer.content_type)

    async def _stream(self, request: web.Request, text: str) -> web.StreamResponse:
        """The answer as server-sent events, a word a chunk at ``stream_rate`` words a second;
        a client that goes away stops it (as vLLM aborts the request): the words not sent are
        not counted in ``generated_tokens``."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        words = re.findall(r"\S+\s*|\s+", text)
        try:
            for word in words:
                delta = {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                await response.write(f"data: {json.dumps(delta)}\n\n".encode())
                self.generated_tokens += 1
                if self.stream_rate:
                    await asyncio.sleep(1 / self.stream_rate)
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            usage = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": len(words)}}
            for event in (end, usage):
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            self.finished_streams += 1
        except ConnectionError:  # the client went away: the rest is never generated
            self.stopped_streams += 1
        return response

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._closing.set)  # stalled requests end first
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def _conversation(messages: list[dict]) -> str:
    """The prompt a plan reads: the first user turn, and a revision's later turns after it."""
    return "\n\n".join(str(m.get("content", "")) for m in messages)


def _completion(sent: dict, text: str, finish_reason: str = "stop") -> web.Response:
    """A chat completion whose one choice says ``text``, as an OpenAI-compatible server answers."""
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in sent.get("messages", []))
    return web.json_response({
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
        "model": sent.get("model", ""),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                  "total_tokens": prompt_tokens + len(text.split())}})
