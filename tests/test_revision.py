"""A second chance for the translator: a rejected translation goes back once with what failed
named, and is kept only when it then passes every check; a streamed answer is stopped at its
first wrong step. The server is the tests' fault proxy answering as a model would: one wrong
step (tests/perturb.py) in the first answer of half the problems, right reasoning to a request
that carries the feedback."""

from __future__ import annotations

import json
import random

import pytest
from conftest import read_rows, traced_row, write_jsonl
from http_fault_proxy import HttpFaultProxy
from perturb import KINDS, STYLES, perturb
from test_golden import PROGRAMS
from test_step_perturbations import _check, _golden_row, _right_reasoning, _written

from jobs import cli
from translate.bill import attempts_bill
from translate.early_stop import StepWatch
from translate.revision import (
    TURNS,
    attempt_of,
    conversation,
    every_attempt,
    feedback,
    revised,
    without_conversation,
)
from translate.steps import check_steps

AGAIN = "Reason through the run again"  # in every feedback turn, never in training data


# -- the conversation ---------------------------------------------------------------------

def test_a_revision_carries_the_conversation_and_names_what_failed():
    item = {"id": "p-0", "problem_id": "p", "refcode": "def f(): pass"}
    first = "<think>\nlong thinking\n</think>\n\nLine 1: `x` = 3.\nFinal answer: 3"
    detail = "`x` = 3 at line 1: the trace has 4 there"
    again = revised(item, first, "wrong_step", detail)
    assert attempt_of(item) == 1 and attempt_of(again) == 2
    assert item == {"id": "p-0", "problem_id": "p", "refcode": "def f(): pass"}  # not changed
    messages = conversation(again, "PROMPT")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == "Line 1: `x` = 3.\nFinal answer: 3"  # no thinking sent back
    assert detail in messages[2]["content"] and AGAIN in messages[2]["content"]
    assert without_conversation(again) == item
    third = revised(again, "Final answer: 5", "wrong_answer", "answered 5, the program returned 4")
    assert attempt_of(third) == 3 and len(third[TURNS]) == 4
    told = every_attempt(third, "wrong_step", "`y` = 1 at line 2")
    assert told.startswith("attempt 1: wrong_step: `x` = 3") and "attempt 2: wrong_answer" in told
    assert "attempt 3: wrong_step" in told and len(told) <= 500
    assert every_attempt(item, "wrong_step", "d") == "d"  # one attempt: its detail alone


def test_feedback_names_the_executed_result_for_a_wrong_answer():
    text = feedback("wrong_answer", "answered 5, the program returned 4")
    assert "the program returned 4" in text and AGAIN in text
    assert "token limit" in feedback("unfinished_thinking", "cut at 100 tokens")


# -- the early stop -----------------------------------------------------------------------

def _streamed(watch: StepWatch, text: str) -> str:
    """What the watch says as ``text`` arrives a word at a time (the session's calls)."""
    so_far = ""
    for word in text.split(" "):
        so_far += word + " "
        if "\n" in word and (wrong := watch.wrong_step(so_far)):
            return wrong
    return ""


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_no_prefix_of_a_right_answer_is_a_wrong_step(name):
    """The stop is only ever early, never wrong: every complete-line prefix of right reasoning
    (each style, with and without anchors) passes the step check."""
    row = _golden_row(name)
    for style in STYLES:
        for anchors in (True, False):
            lines = _written(_right_reasoning(row), style, anchors).splitlines(keepends=True)
            for k in range(1, len(lines) + 1):
                assert not _check(row, "".join(lines[:k])).wrong, (style, anchors, k)


def test_a_streamed_wrong_step_stops_the_answer_with_the_checks_own_words():
    made = stopped = 0
    for name in PROGRAMS:
        row = _golden_row(name)
        for number, kind in enumerate(KINDS):
            wrong = perturb(_right_reasoning(row), kind, random.Random(number), row["refcode"],
                            row["trace"])
            full = _check(row, wrong).wrong if wrong else ""
            if not full:
                continue
            made += 1
            watch = StepWatch(row["trace"], row["refcode"], row["funcname"], thinking=True)
            stop = _streamed(watch, "<think>\nx = 99 surely\n</think>\n\n" + wrong)
            stopped += stop == full
            assert watch.checks <= wrong.count("\n") + 1
    assert made >= 30 and stopped == made, (stopped, made)


def test_a_thinking_block_is_not_checked():
    row = _golden_row(next(iter(PROGRAMS)))
    watch = StepWatch(row["trace"], row["refcode"], row["funcname"], thinking=True)
    assert _streamed(watch, "<think>\nLine 1: `n` = 123456789.\nstill thinking\n") == ""


def test_the_bill_counts_requests_passes_and_tokens_per_kept_example():
    details = {"requests": {"attempt_1": 10, "attempt_2": 4}, "passed": {"attempt_1": 6,
               "attempt_2": 3}, "tokens": {"generated": 1400, "early_stopped": 100},
               "early_stops": {"wrong_step": 2}, "revisions": {"wrong_step": 4}}
    bill = attempts_bill(details, kept=9)
    assert bill["first_attempt_pass_rate"] == 0.6 and bill["pass_rate_after_revisions"] == 0.9
    assert bill["requests_per_kept_example"] == round(14 / 9, 3)
    assert bill["generated_tokens_per_kept_example"] == round(1400 / 9, 1)
    # two stopped answers would have run as long as the 12 that finished (1,300 tokens)
    assert bill["tokens_not_generated_estimate"] == round(2 * 1300 / 12 - 100)
    assert attempts_bill({}, kept=0) == {}


# -- the job through a server -------------------------------------------------------------

@pytest.fixture(scope="module")
def served(sandbox, dev_records):
    """Dev problems the sandbox runs, each with right reasoning; half with a first answer that
    has one wrong step, two that never answer right; and what the server answers each prompt."""
    first, right, fates, records = {}, {}, {}, []
    for number, record in enumerate(dev_records[1::5]):
        io = record["ios"][0]
        if record["refcode"] in right or not (row := traced_row(sandbox, record, io)):
            continue
        text = _right_reasoning(row)
        fate = ("never" if len(records) < 2 else "control" if number % 2 else
                KINDS[number % len(KINDS)])
        wrong = text if fate in ("control", "never") else perturb(
            text, fate, random.Random(number), row["refcode"], row["trace"])
        if wrong is None or (fate not in ("control", "never") and not _check(row, wrong).wrong):
            continue
        first[record["refcode"]] = "Final answer: no idea" if fate == "never" else wrong
        right[record["refcode"]] = first[record["refcode"]] if fate == "never" else text
        fates[record["refcode"]] = fate
        records.append({**record, "ios": [io]})
        if len(records) == 44:
            break

    def plan(prompt: str, attempt: int) -> str:
        [code] = [code for code in right if f"```\n{code}" in prompt]
        return "answer:" + (right[code] if AGAIN in prompt else first[code])

    return records, fates, right, plan


def _run(tmp_path, records, plan, name: str, *flags: str, rate: float = 0.0):
    proxy = HttpFaultProxy(None, plan)
    proxy.stream_rate = rate
    try:
        out = tmp_path / name
        code = cli.main(["run", "--input", str(write_jsonl(tmp_path / "in.jsonl", records)),
                         "--output", str(out), "--actors", "2", "--endpoint", proxy.url,
                         "--model", "served", "--progress-s", "0", *flags])
    finally:
        proxy.close()
    manifest = json.loads((out / "manifest.json").read_text())
    assert code == 0 and manifest["accounting_ok"], manifest["checks"]
    return out, manifest, proxy


def test_one_revision_keeps_what_one_more_turn_saves_and_none_of_its_feedback(
        tmp_path, ray_local, served):
    records, fates, right, plan = served
    out, manifest, proxy = _run(tmp_path, records, plan, "revised", "--revisions", "1")
    traced = {r["refcode"]: r for r in read_rows(out / "traces")}
    wrong_first = [code for code in traced if fates[code] not in ("control", "never")]
    assert len(wrong_first) >= 15, fates
    translations = {r["refcode"]: r for r in read_rows(out / "translations")}
    saved = [code for code in wrong_first if code in translations]
    assert len(saved) >= 0.99 * len(wrong_first), (len(saved), len(wrong_first))
    for code, row in translations.items():
        assert row["attempts"] == (1 if fates[code] == "control" else 2)
        assert row["reasoning"] == right[code]
        assert not check_steps(row["reasoning"], traced[code]["trace"], code).wrong
    for line in (out / "training/messages").glob("*.jsonl"):
        assert AGAIN not in line.read_text() and "wrong step" not in line.read_text()
    # the two that never answer right: one reject each, naming both attempts (a program a
    # busy machine timed out in the sandbox reaches no server: the counts are of the traced)
    never_traced = sum(fates[c] == "never" for c in traced)
    rejects = read_rows(out / "rejects")
    never = [r for r in rejects if r["stage"] == "verify"]
    assert len(never) == never_traced >= 1, never
    assert all(r["detail"].startswith("attempt 1: wrong_answer: answered \"no idea\"")
               and "; attempt 2: wrong_answer" in r["detail"] for r in never), never
    # every request the server saw, and the bill of them
    bill = manifest["translation"]["bill"]
    revised_items = len(wrong_first) + never_traced
    assert bill["requests"] == len(proxy.requests) == len(traced) + revised_items
    assert bill["requests_by_attempt"] == {"attempt_1": len(traced), "attempt_2": revised_items}
    assert bill["first_attempt_pass_rate"] == round(
        sum(fates[c] == "control" for c in traced) / len(traced), 4)
    assert bill["pass_rate_after_revisions"] == round(len(translations) / len(traced), 4)
    assert "after revisions" in (out / "report.html").read_text()

    # --revisions 0: today's rows exactly (the first attempts that passed; the rest rejected),
    # over the programs both runs traced
    out0, manifest0, _ = _run(tmp_path, records, plan, "once", "--revisions", "0")
    traced0 = {r["refcode"] for r in read_rows(out0 / "traces")}
    both = traced0 & set(traced)
    once = [r for r in read_rows(out0 / "translations") if r["refcode"] in both]
    assert sorted(once, key=lambda r: r["id"]) == sorted(
        (r for r in translations.values() if r["attempts"] == 1 and r["refcode"] in both),
        key=lambda r: r["id"])
    assert manifest0["counts"]["verify"]["reasons"] == {
        "wrong_step": sum(fates[c] not in ("control", "never") for c in traced0),
        "wrong_answer": sum(fates[c] == "never" for c in traced0)}
    assert not any("attempt 1" in r["detail"] for r in read_rows(out0 / "rejects"))


def test_engines_on_a_local_ray_without_gpus_for_a_second_pool_run_without_revisions(
        ray_local, capsys):
    """A second engine pool that cannot be placed would wait forever: the run goes without
    revisions and says so; vLLM's CPU backend (and an endpoint) takes them."""
    from jobs.config import JobConfig
    from jobs.pipeline import request_rounds

    cfg = JobConfig()
    cfg.translate.model, cfg.translate.translator = "some/model", "llm"
    assert request_rounds(cfg) == 1
    assert "no revisions in this run" in capsys.readouterr().out
    cfg.translate.device = "cpu"
    assert request_rounds(cfg) == 2
    cfg.translate.revisions = 0
    assert request_rounds(cfg) == 1
