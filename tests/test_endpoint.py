"""Translating through an OpenAI-compatible endpoint: vLLM's own server (CPU build, the tiny
model) on loopback, a fault-injecting proxy in front of it for 429s, 500s and a stall, a
server that checks keys, and a run killed part-way that must not ask twice for an answer it
wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import OPENAI_KEY, ROOT, program, read_rows, write_jsonl
from http_fault_proxy import HttpFaultProxy

from jobs import cli
from jobs.config import JobConfig, TranslateConfig
from translate.endpoint import chat_url, generation_of, public_endpoint
from translate.http_session import EndpointSessionFactory, RequestPolicy, retry_after_s

# vLLM's CPU backend dies of per-request seeds ("CPU Generator does not use offset")
SERVED = ["--model", "tiny", "--max-tokens", "16", "--no-endpoint-seed", "--progress-s", "0"]


def _programs() -> list[dict]:
    loop = program("def main_solution(n):\n    total = 0\n    for i in range(n):\n"
                   "        total += i * i\n    return total\n",
                   [({"n": k}, sum(i * i for i in range(k))) for k in (3, 5, 8)],
                   description="sum of squares")
    short = program("def main_solution(a, b):\n    return a * b\n",
                    [({"a": 6, "b": 7}, 42), ({"a": 2, "b": 9}, 18)], description="multiply")
    return [loop, short]


# -- the parts, without a server --------------------------------------------------------------

def test_an_endpoint_is_named_by_scheme_and_host_only():
    assert chat_url("http://h:8000/v1") == "http://h:8000/v1/chat/completions"
    assert chat_url("http://h:8000") == "http://h:8000/v1/chat/completions"
    assert chat_url("https://api.x.com/v1/chat/completions/") == "https://api.x.com/v1/chat/completions"
    assert public_endpoint("https://user:tok@api.x.com/v1/chat?key=abc") == "https://api.x.com"
    assert public_endpoint("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000"
    cfg = JobConfig(translate=TranslateConfig(model="m", endpoint="https://api.x.com/v1?key=abc"))
    assert cfg.to_dict()["translate"]["endpoint"] == "https://api.x.com"


def test_the_key_is_never_shown_by_what_carries_it():
    factory = EndpointSessionFactory(RequestPolicy(), "sk-very-secret")
    assert "sk-very-secret" not in repr(factory) and "key=set" in repr(factory)
    assert "sk-very-secret" not in json.dumps(JobConfig(translate=TranslateConfig(
        model="m", endpoint="http://h/v1")).to_dict())


def test_thinking_the_server_split_out_is_put_back_in_front():
    def answer(**message):
        return {"choices": [{"message": message}]}

    assert generation_of(answer(reasoning="a", content="b")) == "<think>\na\n</think>\n\nb"
    assert generation_of(answer(reasoning_content="a", content="b")) == "<think>\na\n</think>\n\nb"
    # a thinking the length limit cut: no content, so no </think>, and verify says unfinished
    assert generation_of(answer(reasoning="a", content=None)) == "<think>\na"
    assert generation_of(answer(content="<think>x</think>y")) == "<think>x</think>y"
    assert generation_of(answer(content=None)) == ""  # stopped at once: verify rejects it
    assert generation_of({"error": "x"}) is None and generation_of({"choices": []}) is None
    # content as a list of parts (some servers): its text
    assert generation_of(answer(content=[{"type": "text", "text": "a"}, {"text": "b"}])) == "ab"


def test_an_answer_that_is_not_a_chat_completion_is_one_endpoint_error():
    from translate.endpoint import postprocess
    from translate.http_session import outcome

    def post(body: str, status: int = 200) -> dict:
        return postprocess({"kind": "request", "stream_payload": "{}", "block": "b",
                            "http_response": outcome(status, body=body, error="HTTP 503: down")})

    for body in ("[1, 2]", "not json", '{"choices": "x"}'):
        assert post(body)["translate_reject"].startswith("groundtrace:reject:endpoint_error:"), body
    odd = post('{"choices": [{"message": {"content": "hi"}}], "usage": "many"}')
    assert odd["generated_text"] == "hi" and odd["num_input_tokens"] is None
    assert "HTTP 503: down" in post("", 503)["translate_reject"]


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_s("2") == 2.0 and retry_after_s(None) is None and retry_after_s("soon") is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < retry_after_s(later) <= 31


def test_bad_endpoint_settings_are_one_line(capsys):
    assert cli.main(["run", "--endpoint", "http://h/v1", "--model", "m", "--endpoint-body", "[1]"]) == 2
    assert cli.main(["run", "--endpoint", "http://h/v1"]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 2 and "JSON object" in said[0] and "--model" in said[1], said


# -- against vLLM's OpenAI-compatible server ---------------------------------------------------

@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    return OPENAI_KEY


def test_the_whole_job_through_the_endpoint_rejects_gibberish_with_reasons(
        tmp_path, ray_local, openai_server, key):
    source = write_jsonl(tmp_path / "in.jsonl", _programs())
    out = tmp_path / "out"
    code = cli.main(["run", "--input", str(source), "--output", str(out), "--actors", "1",
                     "--endpoint", openai_server, *SERVED, "--tasks", "output,variable,input",
                     "--samples-per-problem", "0",
                     # vLLM's own field: exactly 16 tokens each, however the random model samples
                     "--endpoint-body", '{"ignore_eos": true}'])
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and manifest["accounting_ok"], manifest["checks"]
    counts = manifest["counts"]
    assert counts["trace_filter"]["kept"] == 5
    assert counts["translate"]["seen"] == counts["make_tasks"]["kept"] > 10
    assert counts["translate"]["kept"] == counts["translate"]["seen"]  # every request answered
    # the tiny model's 16 tokens never finish thinking (the server split the thinking out),
    # nor after the one revision: one reject each, naming both attempts
    rejects = [r for r in read_rows(out / "rejects") if r["stage"] == "verify"]
    assert set(counts["verify"]["reasons"]) == {"unfinished_thinking"}, [r["detail"] for r in rejects]
    assert len(rejects) == counts["translate"]["seen"]
    assert all(r["detail"].startswith("attempt 1: unfinished_thinking") and
               "; attempt 2: unfinished_thinking" in r["detail"] for r in rejects), rejects[:2]
    tr = manifest["translation"]
    assert tr["endpoint"] == public_endpoint(openai_server) and tr["model"] == "tiny"
    # token counts from the answers' usage (streamed): 16 generated per request, two requests
    # an item
    assert tr["bill"]["requests_by_attempt"] == {"attempt_1": counts["translate"]["seen"],
                                                 "attempt_2": counts["translate"]["seen"]}
    assert tr["tokens"]["generated"] == 16 * tr["bill"]["requests"]
    assert tr["bill"]["first_attempt_pass_rate"] == tr["bill"]["pass_rate_after_revisions"] == 0
    assert tr["tokens"]["prompt"] > 100 * tr["bill"]["requests"]
    assert public_endpoint(openai_server) in (out / "report.html").read_text()
    for path in out.rglob("*"):  # the key is in no file of the output
        assert not path.is_file() or key.encode() not in path.read_bytes(), path


def test_a_model_that_does_not_think_is_checked_whole_and_a_cut_answer_is_unfinished(
        tmp_path, ray_local, key, capsys):
    answers = {'"n": 3': "answer:0 + 1 + 4 = 5.\nFinal answer: 5",
               '"n": 5': "answer:The squares add up to 30.\nFinal answer: 30",
               '"n": 8': "answer:The squares add up to 141.\nFinal answer: 141",  # wrong
               '"a": 6': "answer:6 * 7 = 42\n\nFinal answer: 42",
               '"a": 2': "cut:2 * 9 is 18, so the answer is"}  # stopped at the token limit

    def plan(prompt: str, attempt: int) -> str:
        [answer] = [a for shown, a in answers.items() if shown in prompt]
        return answer

    server = HttpFaultProxy(None, plan)  # answers itself: no model behind it
    try:
        source = write_jsonl(tmp_path / "in.jsonl", _programs())
        out = tmp_path / "out"
        code = cli.main(["run", "--input", str(source), "--output", str(out), "--actors", "1",
                         "--endpoint", server.url, "--model", "plain-chat", "--tasks", "output",
                         "--samples-per-problem", "0", "--progress-s", "0.5", "--revisions", "0"])
    finally:
        server.close()
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and manifest["accounting_ok"], manifest["checks"]
    assert manifest["counts"]["verify"]["kept"] == 3
    assert manifest["counts"]["verify"]["reasons"] == {"wrong_answer": 1, "unfinished_thinking": 1}
    [cut] = [r for r in read_rows(out / "rejects") if r["reason"] == "unfinished_thinking"]
    assert "cut at the token limit" in cut["detail"]
    assert manifest["translation"]["answers"] == {"no_thinking": 5}
    assert "0 answers with a thinking block, 5 without" in (out / "report.html").read_text()
    kept = {r["answer_text"] for r in read_rows(out / "translations")}
    assert "The squares add up to 30.\nFinal answer: 30" in kept  # the whole answer is the reasoning
    # no --max-tokens and a server with no /tokenize: the server fills its context itself
    assert server.bodies and not any("max_tokens" in body for body in server.bodies)


def test_without_max_tokens_each_request_asks_for_what_the_served_context_leaves(
        tmp_path, ray_local, openai_server, key):
    """A server started with a short context (here 2048) and no --max-tokens: no refusal; each
    request asks for the room its prompt leaves, as the server's /tokenize counts it."""
    import urllib.request

    answer_all = HttpFaultProxy(openai_server.removesuffix("/v1"),
                                lambda prompt, attempt: "answer:Final answer: 0")
    try:
        source = write_jsonl(tmp_path / "in.jsonl", _programs())
        code = cli.main(["run", "--input", str(source), "--output", str(tmp_path / "out"),
                         "--actors", "1", "--endpoint", answer_all.url, "--model", "tiny",
                         "--no-endpoint-seed", "--progress-s", "0", "--tasks", "output",
                         "--samples-per-problem", "0", "--revisions", "0"])
    finally:
        answer_all.close()
    assert code == 0 and len(answer_all.bodies) == 5
    for body in answer_all.bodies:
        ask = json.dumps({"model": "tiny", "messages": body["messages"]}).encode()
        request = urllib.request.Request(openai_server.removesuffix("/v1") + "/tokenize", data=ask,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {key}"})
        counted = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert counted["max_model_len"] == 2048
        assert body["max_tokens"] == 2048 - counted["count"] > 0


def test_429_500_and_a_stall_are_retried_and_a_request_that_keeps_failing_is_one_reject(
        tmp_path, ray_local, openai_server, key):
    order: list[str] = []  # prompts as they first came

    def plan(prompt: str, attempt: int) -> str:
        if attempt == 1:
            order.append(prompt)
        if prompt == order[0]:
            return "500"  # the first prompt fails every time
        return ("429", "500", "stall", "pass")[order.index(prompt) % 4] if attempt == 1 else "pass"

    proxy = HttpFaultProxy(openai_server.removesuffix("/v1"), plan)
    try:
        source = write_jsonl(tmp_path / "in.jsonl", _programs())
        out = tmp_path / "out"
        code = cli.main(["run", "--input", str(source), "--output", str(out), "--actors", "1",
                         "--endpoint", proxy.url, *SERVED, "--tasks", "output,variable",
                         "--samples-per-problem", "0", "--endpoint-timeout-s", "8",
                         "--endpoint-retries", "3", "--revisions", "0"])
    finally:
        proxy.close()
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and manifest["accounting_ok"], manifest["checks"]
    counts = manifest["counts"]
    assert counts["translate"]["reasons"] == {"endpoint_error": 1}, [
        r["detail"] for r in read_rows(out / "rejects") if r["reason"] == "endpoint_error"]
    assert counts["verify"]["seen"] == counts["translate"]["seen"] - 1
    [failed] = [r for r in read_rows(out / "rejects") if r["reason"] == "endpoint_error"]
    assert "HTTP 500" in failed["detail"] and "after 4 attempts" in failed["detail"], failed
    answered = {p for p, _, action in proxy.requests if action == "pass"}
    assert len(answered) == counts["translate"]["seen"] - 1  # every other prompt got through
    faults = {action for p, _, action in proxy.requests if p != order[0]} - {"pass"}
    assert faults == {"429", "500", "stall"}, faults  # each fault was met and got over
    for prompt in {p for p, _, action in proxy.requests if action == "429"}:
        times = [t for _, t, _ in proxy.chat_requests(prompt)]
        assert times[1] - times[0] >= 0.95, "Retry-After: 1 was not honoured"


def test_an_endpoint_that_refuses_the_job_stops_it_at_once_in_one_line(
        tmp_path, openai_server, monkeypatch, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", _programs())
    monkeypatch.setenv("MY_KEY", "not-the-key-0000")
    cases = [
        (["--endpoint", openai_server, "--endpoint-key-env", "MY_KEY", "--model", "tiny"],
         "refused the API key in $MY_KEY"),
        (["--endpoint", openai_server, "--endpoint-key-env", "NO_SUCH_VARIABLE", "--model", "tiny"],
         "refused the API key in $NO_SUCH_VARIABLE"),
        (["--endpoint", openai_server, "--model", "no-such-model"], "does not exist"),
        (["--endpoint", "http://127.0.0.1:9/v1", "--model", "tiny", "--endpoint-retries", "0"],
         "does not take a chat request"),
        (["--endpoint", openai_server, "--model", "tiny", "--max-tokens", "4096"],
         "does not fit 'tiny''s context"),
    ]
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    for i, (flags, expected) in enumerate(cases):
        out = tmp_path / f"out{i}"
        started = time.monotonic()
        code = cli.main(["run", "--input", str(source), "--output", str(out), *flags])
        said = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(said) == 1 and expected in said[0], (flags, said)
        assert "not-the-key" not in said[0]
        assert not out.exists(), "a refused run touched its output"
        assert time.monotonic() - started < 30


def _committed_translations(out: Path) -> int:
    """Items the translate stage answered in blocks a killed run committed."""
    blocks: dict[str, int] = {}
    for entry in (out / "_ledger").glob("part-*.json") if (out / "_ledger").exists() else ():
        try:
            stats_of = json.loads(entry.read_text())["stats"]
        except ValueError:  # being written
            continue
        for block, stats in stats_of.items():
            blocks[block] = stats["seen"].get("translate", 0)
    return sum(blocks.values())


@pytest.mark.slow
def test_a_resumed_run_does_not_ask_again_for_answers_it_wrote(tmp_path, openai_server, dev_records):
    def plan(prompt: str, attempt: int) -> str:
        return "pass"

    proxy = HttpFaultProxy(openai_server.removesuffix("/v1"), plan)
    source = write_jsonl(tmp_path / "in.jsonl", dev_records[:40])
    out = tmp_path / "out"
    command = [sys.executable, "-m", "jobs.cli", "run", "--input", str(source), "--output",
               str(out), "--actors", "1", "--programs-per-block", "4", "--endpoint", proxy.url,
               *SERVED, "--endpoint-concurrency", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": OPENAI_KEY}
    try:
        first = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not _committed_translations(out):
            time.sleep(0.05)
        assert first.poll() is None, "the run ended before it could be killed: give it more input"
        first.send_signal(signal.SIGKILL)
        first.wait()
        answered_before = _committed_translations(out)
        assert answered_before > 0
        sent_before = len(proxy.requests)
        again = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr[-2000:]
    finally:
        proxy.close()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"] and manifest["resume"]["attempt"] == 2
    total = manifest["counts"]["translate"]["seen"]
    # the second run asked exactly for what the first had not written: each item twice (its
    # gibberish goes back once for a revision), none of those the first run wrote
    assert len(proxy.requests) - sent_before == 2 * (total - answered_before)
    ids = [r["id"] for r in read_rows(out / "rejects") if r["stage"] in ("translate", "verify")]
    assert len(ids) == len(set(ids)) == total  # every item once (all gibberish: all rejects)
