"""Every step checked, not only the answer: reasoning written the ways models write it, on
traces made by the real sandbox; right text kept, a wrong value, a wrong loop count or a value
out of its order rejected with the step named; the renderer (the control) always passes."""

from __future__ import annotations

import json

import pytest
from conftest import run_code, traced_row

from trace_workers.stats import StageStats
from translate.export import BuildSettings
from translate.stage import VerifySettings, finish_translation
from translate.steps import check_steps
from translate.tasks import render_reasoning

LOOP = ("def main_solution(numbers):\n"       # 1
        "    total = 0\n"                     # 2
        "    best = None\n"                   # 3
        "    for n in numbers:\n"             # 4
        "        total += n\n"                # 5
        "        if best is None or n > best:\n"  # 6
        "            best = n\n"              # 7
        "    return [total, best]\n")         # 8
INPUT = {"numbers": [3, 1, 4]}  # total: 0, 3, 4, 8; best: None, 3, 4; the loop runs 3 times


@pytest.fixture(scope="module")
def trace(sandbox) -> str:
    result = run_code(sandbox, LOOP, INPUT)
    assert result["status"] == "returned", result
    return result["trace"]


STYLES = {
    "backticks and becomes": (
        "<think>Let me walk the loop.</think>\n"
        "We start with `total` = 0 and `best` = None.\n"
        "First number 3: `total` becomes 3 and, since best is None, `best` becomes 3.\n"
        "Next 1: `total` becomes 4; 1 is not bigger than 3, so best stays.\n"
        "Then 4: `total` becomes 8 and `best` becomes 4.\n"
        "The loop runs 3 times, once per number.\n"
        "Final answer: [8, 4]"),
    "bare names, values in backticks, a paraphrased loop": (
        "<think>ok</think>\n"
        "Initially total = `0`. Going through the list, the loop body runs three times.\n"
        "After the first element, total is now 3 and best is set to 3. After the second, "
        "total is now 4. After the third, total is now 8, and best is now 4.\n"
        "So the function returns [8, 4].\n\nFinal answer: [8, 4]"),
    "prose around the steps, floats and lists": (
        "<think>\nTracing by hand.\n</think>\n"
        "The function keeps a running sum and the largest value seen so far. With the numbers "
        "[3, 1, 4], the running sum goes 3, then 4, then 8: so `total` = 8 at the end. "
        "The largest value changes twice, finally `best` = 4.0. The result is [8, 4].\n"
        "Final answer: [8, 4]"),
}


@pytest.mark.parametrize("style", list(STYLES))
def test_right_reasoning_in_the_styles_models_write_is_kept(trace, style):
    check = check_steps(STYLES[style], trace, LOOP, "main_solution")
    assert check.wrong == "" and check.checked >= 2 and check.right == check.checked, check


def test_one_wrong_intermediate_value_is_named_with_what_the_trace_holds(trace):
    text = STYLES["backticks and becomes"].replace("`total` becomes 4;", "`total` becomes 5;")
    check = check_steps(text, trace, LOOP, "main_solution")
    # the value the trace holds there, where that change is, and what came before it
    assert check.wrong.startswith("`total` = 5: the trace has 4 here")
    assert "line 5's 2nd run" in check.wrong and "it held 3 before" in check.wrong
    assert check.wrong_kind == "value"


def test_a_wrong_loop_count_is_rejected(trace):
    text = STYLES["backticks and becomes"].replace("The loop runs 3 times", "The loop runs 4 times")
    check = check_steps(text, trace, LOOP, "main_solution")
    assert check.wrong == "the loop at line 4 said to run 4 time(s): it runs 3 time(s) there"
    assert check.wrong_kind == "loop_count"


def test_a_value_the_variable_held_at_another_point_is_out_of_order(trace):
    text = STYLES["backticks and becomes"].replace(
        "Then 4: `total` becomes 8 and `best` becomes 4.",
        "Then 4: `total` becomes 8 and `best` becomes 4. At last `total` becomes 3.")
    check = check_steps(text, trace, LOOP, "main_solution")
    # "at last" is a summary: it is checked against the value at the end of the run
    assert check.wrong == "`total` = 3 at the end: the trace has 8 there"


def test_a_right_answer_reached_through_a_wrong_step_is_a_wrong_step_reject(trace):
    item = {"id": "p-0", "problem_id": "p", "task": "output", "refcode": LOOP,
            "funcname": "main_solution", "input": json.dumps(INPUT), "returned": "[8, 4]",
            "value_format": "json", "trace": trace, "problem_description": "sum and max",
            "io_requirements": ""}
    wrong = STYLES["backticks and becomes"].replace("`best` becomes 3", "`best` becomes 1")
    stats = StageStats()
    rows = finish_translation(item, wrong, {"translator": "llm"}, VerifySettings(),
                              BuildSettings(), stats)
    assert stats.rejected["verify"] == {"wrong_step": 1}
    assert "`best` = 1" in json.loads(rows[0]["payload"])["detail"]
    kept = finish_translation(item, STYLES["backticks and becomes"], {"translator": "llm"},
                              VerifySettings(), BuildSettings(), StageStats())
    translation = json.loads(kept[0]["payload"])
    assert translation["steps_checked"] == translation["steps_right"] >= 6
    # a floor on how much of the trace the text states: this one leaves out best's last change
    sparse = "<think>.</think>\n`total` becomes 8 in the end.\nFinal answer: [8, 4]"
    stats = StageStats()
    finish_translation(item, sparse, {"translator": "llm"}, VerifySettings(min_step_coverage=0.5),
                       BuildSettings(), stats)
    assert stats.rejected["verify"] == {"too_few_steps": 1}
    # the renderer's text is checked only when asked (its steps are the trace's)
    stats = StageStats()
    finish_translation(item, wrong, {"translator": "render"}, VerifySettings(), BuildSettings(), stats)
    assert stats.kept["verify"] == 1
    stats = StageStats()
    finish_translation(item, wrong, {"translator": "render"},
                       VerifySettings(check_steps=("llm", "render")), BuildSettings(), stats)
    assert stats.rejected["verify"] == {"wrong_step": 1}


def test_the_renderer_states_only_right_steps_on_real_programs(sandbox, dev_records):
    checked = right = traces = 0
    for record in dev_records[:80]:
        row = traced_row(sandbox, record, record["ios"][0])
        if row is None:
            continue
        check = check_steps(render_reasoning(row), row["trace"], record["refcode"],
                            record["funcname"])
        assert check.wrong == "", (record["refcode"][:300], check.wrong)
        checked, right, traces = checked + check.checked, right + check.right, traces + 1
    assert traces >= 40 and checked > 100 and right == checked
