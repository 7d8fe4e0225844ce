"""Long runs told in few lines: the digest folds long loops and deep calls, the renderer tells
the folds, and the step check verifies every fold against the whole run.

The traces are stored (tests/golden/digest_*.trace.json, real sandbox runs rewritten by
``--rewrite-golden`` as test_golden's are), so these run in the fast suite.
"""

from __future__ import annotations

import json
import random
import re

import pytest
from conftest import GOLDEN, golden_row
from perturb import FOLD_KINDS, perturb_fold, without_anchors

from trace_workers.trace_filter import count_lines
from translate.digest import LoopFold, digest, digest_at
from translate.prompts import told_trace
from translate.steps import check_steps
from translate.tasks import render_reasoning, translation_prompt
from translate.trace_model import parse_trace

pytestmark = pytest.mark.fast

BUDGET = 60  # a small story budget, so that small programs need folding
BUDGETS = {"digest_chain": 100,  # ...where the calls two deep fold, not the first
           "digest_elided_calls": 120}

PROGRAMS = {
    # one long loop with a branch, then a while loop that halves
    "digest_loop": ("def main_solution(n):\n    total = 0\n    seen = []\n"
                    "    for i in range(n):\n        total += i * i\n        if i % 3 == 0:\n"
                    "            seen.append(i)\n    k = n\n    while k > 1:\n        k = k // 2\n"
                    "    return [total, len(seen), k]\n", {"n": 40}, 1),
    # a helper with a loop of its own, called from a loop: inner loops fold first
    "digest_calls": ("def is_prime(k):\n    if k < 2:\n        return False\n    d = 2\n"
                     "    while d * d <= k:\n        if k % d == 0:\n            return False\n"
                     "        d += 1\n    return True\n\ndef main_solution(limit):\n    count = 0\n"
                     "    for m in range(limit):\n        if is_prime(m):\n            count += 1\n"
                     "    return count\n", {"limit": 60}, 2),
    # nested loops over a grid: the inner ones fold, then the outer one
    "digest_nested": ("def main_solution(size):\n    best = 0\n    for r in range(size):\n"
                      "        row = 0\n        for c in range(size):\n            row += r * c % 7\n"
                      "        best = max(best, row)\n    return best\n", {"size": 12}, 1),
    # recursion: calls below the first fold into their arguments and return values
    "digest_recursion": ("def walk(items, i):\n    if i == len(items):\n        return 0\n"
                         "    rest = walk(items, i + 1)\n    return items[i] + rest\n\n"
                         "def spread(n):\n    out = []\n    for k in range(n):\n"
                         "        out.append(walk(list(range(k)), 0))\n    return out\n\n"
                         "def main_solution(n):\n    values = spread(n)\n    return sum(values)\n",
                         {"n": 9}, 3),
    # calls of calls, each with a loop: the calls two deep fold into argument and result
    "digest_chain": ("def scale(v):\n    out = []\n    for x in v:\n        out.append(x * 2)\n"
                     "    return out\n\ndef shift(v):\n    res = []\n    for x in v:\n"
                     "        res.append(x + 1)\n    return res\n\ndef combine(v):\n"
                     "    a = scale(v)\n    b = shift(a)\n    c = scale(b)\n    d = shift(c)\n"
                     "    return sum(d)\n\ndef main_solution(n):\n"
                     "    first = combine(list(range(n)))\n"
                     "    second = combine(list(range(n, 2 * n)))\n    return first + second\n",
                     {"n": 6}, 4),
    # runs past the run budget (10,000 lines), recorded with elision (trace_workers.jail.
    # elision): a loop's rest and a nested loop's as spans, whose folds the digest must make
    "digest_elided_loops": ("def main_solution(n):\n    total = 0\n    hits = []\n"
                            "    for i in range(n):\n        for j in range(i % 7 + 40):\n"
                            "            total += i * j\n        if i % 97 == 0:\n"
                            "            hits.append(i)\n    k = 0\n    while total > 1:\n"
                            "        total //= 3\n        k += 1\n    return [k, hits]\n",
                            {"n": 3000}, 1),
    # ...deep recursion (call spans) and a generator expression's many resumes
    "digest_elided_calls": ("def fib(k):\n    if k < 2:\n        return k\n"
                            "    return fib(k - 1) + fib(k - 2)\n\n"
                            "def main_solution(n):\n    first = fib(n)\n"
                            "    odd = sum(1 for m in range(n * 400) if m % 3 == 1)\n"
                            "    return [first, odd]\n", {"n": 16}, 8),
}


@pytest.fixture(params=list(PROGRAMS))
def long_run(request) -> tuple[str, dict]:
    name = request.param
    row = golden_row(request, name, PROGRAMS[name])
    told = digest(row["trace"], row["refcode"], BUDGETS.get(name, BUDGET))
    assert told is not None and told.folds, f"{name} needs no folding at its budget"
    return name, {**row, "story_level": told.level, "story_lines": told.told_lines}


def _compare(request, path, actual: str) -> None:
    if request.config.getoption("--rewrite-golden"):
        path.write_text(actual)
    assert actual == path.read_text(), f"{path.name} differs: rerun with --rewrite-golden if meant"


def test_a_long_run_is_told_within_the_story_budget(long_run, request):
    name, row = long_run
    told = digest_at(row["trace"], row["refcode"], row["story_level"])
    text = told.text()
    budget = BUDGETS.get(name, BUDGET)
    assert count_lines(row["trace"]) >= budget > count_lines(text) == told.told_lines
    _compare(request, GOLDEN / f"{name}.story.txt", text + "\n")


def test_the_renderer_tells_every_fold_and_every_step_it_states_is_right(long_run, request):
    name, row = long_run
    text = render_reasoning(row)
    _compare(request, GOLDEN / f"{name}.render.txt", text)
    for reasoning in (text, without_anchors(text)):
        check = check_steps(reasoning, row["trace"], row["refcode"])
        assert check.wrong == "" and check.right == check.checked, check.wrong
    told = digest_at(row["trace"], row["refcode"], row["story_level"])
    loops = [f for f in told.folds if isinstance(f, LoopFold)]
    assert len(re.findall(r"runs \d+ more times", text)) == len(loops)
    assert text.count("We do not follow this call") == told.folded_calls


def test_a_fold_states_only_values_the_trace_printed(long_run):
    """Each value a fold gives is its variable's last change in the folded iterations, as the
    trace prints it: never computed, never invented."""
    _, row = long_run
    model = parse_trace(row["trace"])
    told = digest_at(model, row["refcode"], row["story_level"])
    for fold in told.folds:
        if not isinstance(fold, LoopFold):
            continue
        end = model.events[fold.end].position
        start = model.events[fold.start].position
        for name, text in fold.values:
            last = [c for c in model.changes if c.name == name and c.frame == fold.frame
                    and start <= c.position < end and not c.in_comprehension][-1]
            assert last.text == text


def _long_runs() -> list[dict]:
    rows = []
    for name, (code, kwargs, _) in PROGRAMS.items():
        stored = json.loads((GOLDEN / f"{name}.trace.json").read_text())
        told = digest(stored["trace"], code, BUDGETS.get(name, BUDGET))
        rows.append({"refcode": code, "funcname": "main_solution", "input": json.dumps(kwargs),
                     "returned": stored["returned"], "value_format": "json",
                     "trace": stored["trace"], "story_level": told.level})
    return rows


@pytest.mark.parametrize("kind", FOLD_KINDS)
def test_a_wrong_summary_of_a_fold_is_a_wrong_step(kind):
    """A folded count one off, a fold's value from the wrong iteration, a wrong return of a
    folded call: each is rejected, with "Line N:" anchors and without."""
    made, missed = 0, []
    for row in _long_runs():
        right = render_reasoning(row)
        for seed in range(6):
            wrong = perturb_fold(right, kind, random.Random(seed), row["refcode"], row["trace"])
            if wrong is None:
                continue
            assert wrong != right
            for text in (wrong, without_anchors(wrong)):
                made += 1
                if check_steps(text, row["trace"], row["refcode"]).wrong == "":
                    missed.append(text)
    assert made >= 6, f"the long runs hold too few folds for {kind}"
    assert not missed, missed[0]


def test_the_prompt_of_a_long_run_shows_its_digest_and_says_how_to_tell_a_fold(long_run):
    _, row = long_run
    prompt = translation_prompt(row)
    assert told_trace(row) in prompt and "left out here" in prompt
    assert "runs K more times" in prompt
    whole = translation_prompt({**row, "story_level": 0})
    assert len(prompt) < len(whole) and "runs K more times" not in whole


def test_a_run_that_fits_is_told_whole():
    path = GOLDEN / "loop.trace.json"
    trace = json.loads(path.read_text())["trace"]
    told = digest(trace, "def main_solution(n):\n    total = 0\n    for i in range(n):\n"
                  "        total += i\n    return total\n", 300)
    assert told.level == 0 and not told.folds and told.text() == trace


def test_the_manifest_and_the_report_count_what_was_folded():
    from jobs.manifest import story_summary
    from jobs.report import stories_section
    from trace_workers.actor import note_story
    from trace_workers.stats import StageStats

    stats = StageStats()
    rows = _long_runs()
    for row in rows:
        note_story(stats, digest_at(row["trace"], row["refcode"], row["story_level"]))
    short = json.loads((GOLDEN / "loop.trace.json").read_text())["trace"]
    note_story(stats, digest(short, "", 300))
    summary = story_summary(stats)
    folded = [digest_at(r["trace"], r["refcode"], r["story_level"]) for r in rows]
    assert summary["kept_traces"] == len(rows) + 1 and summary["whole"] == 1
    assert summary["digested"] == len(rows)
    assert summary["folded_iterations"] == sum(d.folded_iterations for d in folded) > 0
    assert summary["folded_calls"] == sum(d.folded_calls for d in folded) > 0
    assert sum(summary["run_lines_histogram"].values()) == len(rows) + 1
    assert list(summary["story_lines_histogram"])[0] == "<32"  # in order of length
    html = stories_section({"stories": summary, "config": {"trace": {"max_trace_lines": 300}}})
    assert f"{summary['digested']} longer than the story budget (300 lines)" in html
