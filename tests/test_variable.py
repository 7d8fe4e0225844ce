"""Variable-tracing questions: sampled from real snoop traces of small programs whose values
are known by hand, answered by the trace, and checked like every other answer."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT, numpy_jail, run_code

from jobs import cli
from trace_workers.stats import StageStats
from translate.answer import verify
from translate.tasks import TaskSettings, parse_tasks, render_reasoning, task_items
from translate.variable import candidate_questions, sample_questions

LOOP = ("def main_solution(n):\n"      # 1
        "    total = 0\n"              # 2
        "    for i in range(n):\n"     # 3
        "        total += i\n"         # 4
        "    return total\n")          # 5
HELPER = ("def double(x):\n"           # 1
          "    return 2 * x\n"         # 2
          "\n"                         # 3
          "def main_solution(n):\n"    # 4
          "    result = double(n)\n"   # 5
          "    result += 1\n"          # 6
          "    return result\n")       # 7
RECURSIVE = ("def main_solution(n):\n"
             "    if n <= 1:\n"
             "        return 1\n"
             "    return n * main_solution(n - 1)\n")


@pytest.fixture(scope="module")
def sandbox():
    """A jail of the module's own, with room: these tests read traces and race no time limit
    (the session's jail stops a run at 2 s, which a busy machine can reach)."""
    yield from numpy_jail(30.0)


def _trace(sandbox, code: str, kwargs: dict, depth: int = 1) -> str:
    result = run_code(sandbox, code, kwargs, depth)
    assert result["status"] == "returned", result
    return result["trace"]


def _answers(trace: str) -> dict[str, str]:
    return {q.text: q.answer for q in candidate_questions(trace, "main_solution")}


def test_values_and_line_counts_of_a_loop_are_the_ones_worked_out_by_hand(sandbox):
    answers = _answers(_trace(sandbox, LOOP, {"n": 4}))
    # total: 0, 1, 3, 6 after each run of line 4; i: 0, 1, 2, 3 after each run of line 3
    assert answers["What is the value of `total` right after line 4 (`total += i`) runs for the "
                   "3rd time?"] == "3"
    # snoop prints a value only when it changes (and not `total = 0`, which reads as the
    # source does): what it did not print is never asked
    assert not any("line 2" in text or "line 4 (`total += i`) runs for the 1st" in text
                   for text in answers)
    assert answers["What is the value of `i` right after line 3 (`for i in range(n):`) runs for "
                   "the 2nd time?"] == "1"
    # the loop header runs once more than its body: the check that ends the loop
    assert answers["How many times does line 4 (`total += i`) run during this call?"] == "4"
    assert answers["How many times does line 3 (`for i in range(n):`) run during this call?"] == "5"
    # line 3's 5th run changes nothing: there is no value question about it
    assert not any("runs for the 5th time" in text for text in answers)


def test_a_line_that_calls_a_traced_function_runs_once_though_snoop_prints_it_twice(sandbox):
    trace = _trace(sandbox, HELPER, {"n": 5}, depth=2)
    assert trace.count("    5 |     result = double(n)") == 2  # snoop prints it again on return
    answers = _answers(trace)
    assert answers["What is the value of `result` right after line 5 (`result = double(n)`) runs "
                   "for the 1st time?"] == "10"
    assert answers["What is the value of `result` right after line 6 (`result += 1`) runs for "
                   "the 1st time?"] == "11"
    assert not any("2nd time" in text or "How many times does line 5" in text for text in answers)
    assert not any("line 2" in text for text in answers)  # only the entry function's own lines


MULTILINE = ("def main_solution(n):\n"    # 1
             "    rows = []\n"              # 2
             "    for i in range(n):\n"     # 3
             "        rows.append([\n"      # 4
             "            i,\n"             # 5
             "            i * i,\n"         # 6
             "        ])\n"                 # 7
             "    total = sum(r[1] for r in rows)\n"  # 8
             "    return {\n"               # 9
             "        'rows': len(rows),\n"  # 10
             "        'total': total,\n"    # 11
             "    }\n")                     # 12


def _line_runs(code: str, kwargs: dict) -> dict[int, int]:
    """How often each line of the entry frame runs, by a plain sys.settrace: an independent
    tracer (the interpreter's own line events)."""
    import sys

    namespace: dict = {}
    exec(compile(code, "<multiline>", "exec"), namespace)
    runs: dict[int, int] = {}

    def tracer(frame, event, arg):
        if frame.f_code.co_name != "main_solution":
            return None
        if event == "line":
            runs[frame.f_lineno] = runs.get(frame.f_lineno, 0) + 1
        return tracer

    sys.settrace(tracer)
    try:
        namespace["main_solution"](**kwargs)
    finally:
        sys.settrace(None)
    return runs


def test_statements_over_several_lines_get_no_questions_and_every_count_is_the_interpreters(sandbox):
    trace = _trace(sandbox, MULTILINE, {"n": 3})
    assert trace.count("    9 |     return {") == 2  # snoop prints the first line twice
    questions = candidate_questions(trace, "main_solution", MULTILINE)
    assert questions, "the loop and the sum still get questions"
    assert not any(f"line {n} " in q.text for q in questions for n in (4, 5, 6, 7, 9, 10, 11, 12))
    runs = _line_runs(MULTILINE, {"n": 3})
    counts = [q for q in questions if q.kind == "count"]
    assert {q.lineno for q in counts} == {3}
    assert all(int(q.answer) == runs[q.lineno] for q in counts)
    # without the program's code, the old questions come back (what the check leaves out)
    assert any("line 9 " in q.text for q in candidate_questions(trace, "main_solution"))


def test_a_recursive_entry_function_gets_no_questions(sandbox):
    assert candidate_questions(_trace(sandbox, RECURSIVE, {"n": 4}, depth=1), "main_solution") == []


def test_sampling_is_seeded_bounded_and_never_repeats_an_answer(sandbox):
    trace = _trace(sandbox, LOOP, {"n": 6})
    first = sample_questions(trace, "main_solution", 4, "seed-a")
    assert [q.text for q in first] == [q.text for q in sample_questions(trace, "main_solution", 4, "seed-a")]
    assert len(first) == 4 and len({q.answer for q in first}) == 4
    assert len(sample_questions(trace, "main_solution", 100, "seed-a")) == len(
        {q.answer for q in candidate_questions(trace, "main_solution")})


def _item(sandbox) -> dict:
    """The variable item for "total after the 3rd run of line 4" (answer 3) of LOOP(n=4)."""
    trace = {"id": "p-0", "problem_id": "p", "problem_description": "sum below n",
             "io_requirements": "", "refcode": LOOP, "funcname": "main_solution",
             "input": '{"n": 4}', "returned": "6", "value_format": "json",
             "trace": _trace(sandbox, LOOP, {"n": 4})}
    items = task_items(trace, TaskSettings(("output", "variable"), 3, 0), StageStats())
    assert [i["task"] for i in items] == ["output", "variable", "variable", "variable"]
    assert items[0] == {**trace, "task": "output"}
    question = next(q for q in candidate_questions(trace["trace"], "main_solution")
                    if "`total`" in q.text and "3rd time" in q.text)
    return {**trace, "task": "variable", "question": question.text, "answer": question.answer,
            "trace": question.trace}


def test_the_verifier_takes_the_traced_value_and_nothing_else(sandbox):
    item = _item(sandbox)
    assert verify("<think>…</think>\nAfter three runs total is 0+0+1+2.\nFinal answer: 3",
                  item["answer"], python=True).ok
    wrong = verify("<think>…</think>\nFinal answer: 6", item["answer"], python=True)
    assert (wrong.ok, wrong.reason) == (False, "wrong_answer")
    assert verify("<think>…</think>\nFinal answer: '3'", item["answer"], python=True).reason == "wrong_answer"


def test_the_rendered_reasoning_stops_at_the_asked_point_and_answers_it(sandbox):
    item = _item(sandbox)
    text = render_reasoning(item)
    assert text.splitlines()[-1] == "Final answer: 3"
    assert "`total` becomes 6" not in text  # the 4th run of line 4 comes after the question
    assert verify(text, item["answer"], thinking=False, python=True).ok


def test_task_lists_are_read_once_each_and_unknown_tasks_refused():
    assert parse_tasks("output, variable,output,rewrite") == ("output", "variable", "rewrite")
    with pytest.raises(ValueError, match="unknown task"):
        parse_tasks("outptu")
    with pytest.raises(ValueError, match="at least one"):
        parse_tasks(" , ")


@pytest.mark.slow
def test_a_run_with_variable_questions_writes_them_beside_the_output_task(tmp_path, ray_local):
    out = tmp_path / "out"
    assert cli.main(["run", "--input", str(ROOT / "data" / "sample.jsonl"), "--output", str(out),
                     "--actors", "2", "--tasks", "output,variable", "--variable-questions", "2",
                     "--progress-s", "0"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accounting_ok"]
    kept = manifest["counts"]["trace_filter"]["kept"]
    tasks = manifest["tasks"]
    assert tasks["output"] == {"items": kept, "examples": kept}
    assert 0 < tasks["variable"]["items"] <= 2 * kept
    assert tasks["variable"]["examples"] == tasks["variable"]["items"]  # the renderer is exact
    import pyarrow.parquet as pq

    examples = [r for f in (out / "training" / "parquet").glob("*.parquet")
                for r in pq.read_table(f).to_pylist()]
    variable = [r for r in examples if r["task"] == "variable"]
    assert len(variable) == tasks["variable"]["examples"]
    assert all(":v" in r["id"] and "line" in r["messages"][0]["content"] for r in variable)
    translations = [r for f in (out / "translations").glob("*.parquet")
                    for r in pq.read_table(f).to_pylist()]
    assert all(r["question"] for r in translations if r["task"] == "variable")
    page = (out / "report.html").read_text()
    assert f"<td>variable</td><td>{tasks['variable']['items']}</td>" in page
