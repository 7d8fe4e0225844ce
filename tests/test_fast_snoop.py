"""fast_snoop's tracer writes snoop's own trace, byte for byte, only faster.

Every program runs in two real jails, one with fast_snoop's tracer (the default) and one with
snoop's own, and the traces must be identical. The programs are written to reach each thing
fast_snoop changes: which frames are traced (depth, recursion, a target or a generator
reached again from below the depth limit, library code, comprehensions in library code), the
order of locals (cell and free variables, del), reused reprs (the
same object, mutated containers, equal values of other types, a repr that raises, a huge int),
comprehension summaries (frame switches into traced calls; iterators, functions and bound
built-in methods whose repr is reused while they stay the same object, or not, when their name
or class changes; plain scalars whose repr waits for the summary, next to values of other
kinds, and after a huge int made cheap_repr suppress ints), lazy ends of long sequences,
generators, exceptions, and the memoised prefix and source lines.
"""

from __future__ import annotations

import json

import pytest

from trace_workers.jail.sandbox import Sandbox, SandboxLimits, SandboxSettings

PROGRAMS = {
    "recursion_deeper_than_depth": ("""\
def walk(n, seen):
    if n == 0:
        return seen
    seen.append(n)
    return walk(n - 1, seen)

def main_solution(n):
    seen = []
    out = walk(n, seen)
    return len(out)
""", {"n": 12}, 2),
    "calls_from_untraced_callers": ("""\
def deeper(n, g):
    if n > 0:
        return deeper(n - 1, g)
    return main_solution(-1) if g is None else next(g)

def middle(n, g):
    return deeper(n, g)

def counter():
    i = 0
    while True:
        i += 1
        yield i

def main_solution(n):
    if n < 0:
        found = 'again'
        return found
    g = counter()
    first = next(g)
    below = [middle(k, g) for k in range(n)]
    again = deeper(3, None) if n > 100 else middle(2, None)
    last = next(g)
    return [first, below, again, last]
""", {"n": 3}, 2),
    "closures_cell_and_free_variables": ("""\
def main_solution(a, b):
    total = a
    def add(x):
        nonlocal total
        step = x * b
        total += step
        return total
    for i in range(3):
        add(i)
    del a
    z = total
    return z
""", {"a": 2, "b": 5}, 2),
    "comprehensions_of_every_kind": ("""\
def square(x):
    y = x * x
    return y

def main_solution(n):
    squares = [square(i) for i in range(n)]
    table = {i: [j for j in range(i)] for i in range(n)}
    evens = {i % 4 for i in range(n * 3)}
    total = sum(i for i in range(n) if i % 2)
    nested = [[a * b for b in range(3)] for a in range(3)]
    return [squares, len(table), sorted(evens), total, nested]
""", {"n": 7}, 2),
    "long_comprehension_summary": ("""\
def main_solution(n):
    words = [str(i) * (i % 3) for i in range(n)]
    same = [1 for _ in range(n)]
    return [len(words), sum(same)]
""", {"n": 500}, 1),
    "library_code_with_its_own_comprehensions": ("""\
import statistics
import json
from collections import Counter

def main_solution(values):
    middle = statistics.median(values)
    spread = statistics.pstdev(values)
    counts = Counter(values).most_common(2)
    text = json.dumps({"m": middle})
    modes = statistics.multimode(values)
    return [middle, round(spread, 3), counts, text, modes]
""", {"values": [3, 1, 4, 1, 5, 9, 2, 6]}, 3),
    "same_objects_mutations_and_lookalikes": ("""\
def main_solution(n):
    items = []
    lookup = {}
    marks = set()
    pair = (1, 2)
    x = 1
    for i in range(n):
        items.append(i)
        items[0] = i
        lookup[i % 2] = i
        marks.add(i % 3)
        x = 1.0 if i % 2 else True
        x = 1
        pair = (1, 2.0)
    items.sort(reverse=True)
    lookup.clear()
    marks.discard(0)
    big = list(range(1000))
    big[500] = -1
    big[-1] = 'end'
    return [items, x, sorted(marks)]
""", {"n": 6}, 1),
    "reprs_that_raise_and_huge_ints": ("""\
class Broken:
    def __repr__(self):
        raise ValueError("no repr")

class Stack(list):
    pass

def main_solution(n):
    value = 7
    broken = Broken()
    value = 10 ** 5000 + n
    small = 12
    stack = Stack([1, 2, 3])
    stack.append(small)
    value = 3
    small = 12
    return n
""", {"n": 1}, 1),
    "long_sequences_shown_by_their_ends": ("""\
import itertools

def main_solution(n):
    perms = list(itertools.permutations(range(n)))
    row = tuple(range(10 ** 5))
    nested = [[i] * 50 for i in range(200)]
    first = perms[0]
    return [len(perms), len(row), len(nested), list(first)]
""", {"n": 8}, 1),
    "generators_and_exceptions": ("""\
def numbers(n):
    for i in range(n):
        if i == 3:
            try:
                raise KeyError(i)
            except KeyError:
                pass
        yield i * 2

def risky(x):
    return 10 // x

def main_solution(n):
    got = []
    for value in numbers(n):
        got.append(value)
    try:
        risky(0)
    except ZeroDivisionError as error:
        message = str(error)
    return [got, message]
""", {"n": 5}, 3),
    "classes_lambdas_decorators_with": ("""\
import functools
import contextlib

def logged(function):
    @functools.wraps(function)
    def inner(*args):
        result = function(*args)
        return result
    return inner

class Counter:
    def __init__(self):
        self.count = 0

    @logged
    def bump(self, by):
        self.count += by
        return self.count

@contextlib.contextmanager
def opened(name):
    yield name.upper()

def main_solution(n):
    counter = Counter()
    key = lambda v: -v
    for i in sorted(range(n), key=key):
        counter.bump(i)
    with opened("x") as label:
        text = f"{label}{counter.count}"
    while n > 0:
        n -= 2
    return text
""", {"n": 4}, 4),
    "comprehension_values_whose_repr_is_their_identity": ("""\
import itertools
import re

class Box:
    pass

class Other:
    pass

def helper(x):
    y = x + 1
    return y

def main_solution(n):
    match = re.compile("[0-9]+").match
    box = Box()
    size = box.__sizeof__
    def shout(x):
        return x
    def flip(i):
        box.__class__ = Other if i % 2 else Box
        shout.__qualname__ = "shout_" + str(i % 3)
        return i
    found = [w for w in ["1", "a", "22"] * n if match(w)]
    steps = [flip(i) + 0 * size() for i in range(n) if shout is not box]
    pairs = [(a, b) for a, b in zip(range(n), itertools.count(5))]
    walked = [helper(x) for x in iter(range(n))]
    return [len(found), steps, pairs, walked]
""", {"n": 12}, 2),
    "comprehension_scalars_whose_repr_waits_for_the_summary": ("""\
def main_solution(n):
    values = [1, True, 1, 1, "1", [1], [1], 2, 2.0, 10**20, 10**20, "a" * 40, "b", "b",
              None, None, 3, -0.0, 0.0, 7, False, 0, "", "", 4]
    kinds = [type(v).__name__ for v in values * n]
    same = [v for v in values * n]
    pairs = {k: v for k, v in zip(range(30), "abcabcabc" * n)}
    huge = [x for x in [5, 6, 10**5000, 7, 8] * n]
    after = [i for i in range(14)]
    return [len(kinds), len(same), len(pairs), len(huge), after]
""", {"n": 2}, 1),
    "numpy_values": ("""\
import numpy as np

def main_solution(n):
    grid = np.zeros((n, n))
    for i in range(n):
        grid[i, i] = i
    flat = grid.ravel()
    return float(flat.sum())
""", {"n": 4}, 1),
    "uncaught_exception": ("""\
def main_solution(items):
    total = 0
    for item in items:
        total += item
    return total
""", {"items": [1, "a"]}, 1),
}


@pytest.fixture(scope="module")
def jails():
    # snoop's own tracer has no elision: a run over the budget is a trace_limit in both
    limits = {"timeout_s": 5.0, "dry_run": False, "elide": False}
    fast = Sandbox(SandboxSettings(limits=SandboxLimits(**limits), preload=("numpy",)))
    plain = Sandbox(SandboxSettings(limits=SandboxLimits(fast_tracer=False, **limits),
                                    preload=("numpy",)))
    with fast, plain:
        yield fast, plain


def both(jails, code: str, kwargs: str, depth: int, funcname: str = "main_solution",
         call_format: bool = False) -> tuple[dict, dict]:
    return tuple(jail.run(code, funcname, kwargs, depth, call_format=call_format)
                 for jail in jails)


@pytest.mark.parametrize("name", PROGRAMS)
def test_the_trace_is_snoops_own_byte_for_byte(jails, name):
    code, kwargs, depth = PROGRAMS[name]
    fast, plain = both(jails, code, json.dumps(kwargs), depth)
    assert plain["status"] in ("returned", "error")
    assert plain["trace_lines"] > 5
    assert (fast["status"], fast.get("returned"), fast.get("detail")) == (
        plain["status"], plain.get("returned"), plain.get("detail"))
    assert fast["trace"] == plain["trace"]


@pytest.fixture(scope="module")
def cold_jail():
    limits = SandboxLimits(timeout_s=5.0, dry_run=False, warm_up=False)
    with Sandbox(SandboxSettings(limits=limits, preload=("numpy",))) as jail:
        yield jail


def test_the_zygotes_warm_up_trace_leaves_no_mark_on_any_runs_trace(jails, cold_jail):
    warm = jails[0]
    assert warm.info["warm_up"] == "done" and cold_jail.info["warm_up"] == "off"
    for name, (code, kwargs, depth) in PROGRAMS.items():
        warm_run, cold_run = (jail.run(code, "main_solution", json.dumps(kwargs), depth)
                              for jail in (warm, cold_jail))
        assert (warm_run["status"], warm_run.get("returned"), warm_run["trace"]) == (
            cold_run["status"], cold_run.get("returned"), cold_run["trace"]), name


@pytest.mark.alone  # two runs' times compared: a busy machine skews either
def test_a_long_list_costs_its_ends_not_its_length(jails):
    """cheap_repr copied half of a list to show six items of it: 40 ms a line for 3.6 M."""
    code = """\
import itertools

def main_solution(n):
    perms = list(itertools.permutations(range(n)))
    total = 0
    for perm in perms[:200]:
        total += perm[0]
        total -= perm[1]
    return total
"""
    fast, plain = both(jails, code, json.dumps({"n": 9}), 1)
    assert fast["trace"] == plain["trace"] and fast["status"] == "returned"
    assert fast["elapsed_s"] < plain["elapsed_s"] / 2


@pytest.mark.parametrize("part", [0, 1, 2])
def test_dev_set_traces_are_snoops_own(jails, dev_records, part):
    """A spread of real PyEdu programs (two inputs each, every 6th program), in three parts
    that the suite's workers run side by side."""
    from trace_workers.raw_filter import RawFilterConfig, filter_program
    from trace_workers.records import ProgramWork, parse_record
    from trace_workers.stats import StageStats

    compared = 0
    for number, record in enumerate(dev_records[6 * part::18]):
        parsed = parse_record(json.dumps(record), f"dev:{number}")
        if hasattr(parsed, "reason"):
            continue
        for row in filter_program(parsed, RawFilterConfig(), StageStats()):
            work = ProgramWork.from_payload(row["payload"]) if row["kind"] == "program" else None
            if work is None or work.jail == "full":
                continue
            for run in work.runs[:2]:
                fast, plain = both(jails, work.refcode, run.input, work.depth, work.funcname,
                                   work.call_format)
                if "timeout" in (fast["status"], plain["status"]):
                    continue  # a slower tracer may stop somewhere else
                # a run stopped at the line budget carries no trace, but its size in lines
                # and characters (the detail) must agree too
                assert [fast.get(key) for key in ("status", "trace", "detail", "trace_lines")] == [
                    plain.get(key) for key in ("status", "trace", "detail", "trace_lines")
                ], f"{work.problem_id} input {run.input[:100]}"
                compared += 1
    assert compared > 50
