"""The renderer and the variable questions on stored traces (golden files, as snoop's own tests
keep them): fast to run after a one-line change, exact to the character.

tests/golden/NAME.trace holds a real trace of a small program (made by the sandbox); NAME.render.txt
the renderer's reasoning for it, NAME.questions.json the variable questions it answers. Run
``pytest tests/test_golden.py --rewrite-golden`` (``make golden``) after changing the tracer,
the renderer or the questions on purpose: it traces the programs again in the sandbox and
rewrites every file, and ``git diff tests/golden`` then shows what changed.
"""

from __future__ import annotations

import json

import pytest
from conftest import GOLDEN, golden_row

from translate.steps import check_steps
from translate.tasks import render_reasoning
from translate.variable import candidate_questions

PROGRAMS = {
    "loop": ("def main_solution(n):\n    total = 0\n    for i in range(n):\n        total += i\n"
             "    return total\n", {"n": 4}, 1),
    "helper": ("def double(x):\n    return 2 * x\n\ndef main_solution(n):\n"
               "    result = double(n)\n    result += 1\n    return result\n", {"n": 5}, 2),
    "branches": ("def main_solution(items, target):\n    low, high = 0, len(items) - 1\n"
                 "    while low <= high:\n        middle = (low + high) // 2\n"
                 "        if items[middle] == target:\n            return middle\n"
                 "        if items[middle] < target:\n            low = middle + 1\n"
                 "        else:\n            high = middle - 1\n    return -1\n",
                 {"items": [1, 3, 5, 7, 9], "target": 7}, 1),
    "multiline": ("def main_solution(n):\n    rows = []\n    for i in range(n):\n"
                  "        rows.append([\n            i,\n            i * i,\n        ])\n"
                  "    return {\n        'rows': len(rows),\n        'total': sum(r[1] for r in rows),\n"
                  "    }\n", {"n": 3}, 1),
    "comprehension": ("def main_solution(words):\n    lengths = [len(w) for w in words]\n"
                      "    longest = max(lengths)\n    return [w for w in words if len(w) == longest]\n",
                      {"words": ["ab", "abc", "xyz"]}, 1),
    "recursion": ("def main_solution(n):\n    if n <= 1:\n        return 1\n"
                  "    return n * main_solution(n - 1)\n", {"n": 4}, 1),
    "strings": ("def main_solution(text):\n    counts = {}\n    for ch in text:\n"
                "        counts[ch] = counts.get(ch, 0) + 1\n    return counts\n", {"text": "abca"}, 1),
    "nested": ("def main_solution(grid):\n    best = 0\n    odd = 0\n    for row in grid:\n"
               "        total = 0\n        for x in row:\n            if x % 2 == 0:\n"
               "                total += x\n            else:\n                odd += 1\n"
               "        if total > best:\n            best = total\n    return [best, odd]\n",
               {"grid": [[1, 2, 4], [3, 6], [5]]}, 1),
}


@pytest.fixture(params=list(PROGRAMS))
def golden(request) -> tuple[str, dict]:
    return request.param, golden_row(request, request.param, PROGRAMS[request.param])


def _compare(request, path, actual: str) -> None:
    if request.config.getoption("--rewrite-golden"):
        path.write_text(actual)
    assert actual == path.read_text(), f"{path.name} differs: rerun with --rewrite-golden if meant"


def test_the_renderer_writes_the_golden_reasoning(golden, request):
    name, row = golden
    text = render_reasoning(row)
    _compare(request, GOLDEN / f"{name}.render.txt", text)
    check = check_steps(text, row["trace"], row["refcode"], row["funcname"])
    assert check.wrong == "" and check.right == check.checked  # the control: every step right


def test_the_variable_questions_are_the_golden_ones(golden, request):
    name, row = golden
    questions = [{"kind": q.kind, "text": q.text, "answer": q.answer, "line": q.lineno}
                 for q in candidate_questions(row["trace"], "main_solution", row["refcode"])]
    _compare(request, GOLDEN / f"{name}.questions.json", json.dumps(questions, indent=1) + "\n")
