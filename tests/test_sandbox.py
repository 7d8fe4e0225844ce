"""The sandbox traces real programs with snoop: format, values, determinism, limits."""

from __future__ import annotations

import json

import pytest
from conftest import run_code

from trace_workers.jail.sandbox import Sandbox, SandboxLimits, SandboxSettings

TWO_FUNCTIONS = """\
def helper(values):
    total = 0
    for value in values:
        total += value
    return total

def main_solution(values, label):
    total = helper(values)
    return {"label": label, "total": total}
"""


def test_trace_has_snoop_format_with_the_programs_own_line_numbers(sandbox):
    result = run_code(sandbox, TWO_FUNCTIONS, {"values": [1, 2], "label": "x"}, depth=2)
    assert result["status"] == "returned"
    lines = [line.strip() for line in result["trace"].strip().split("\n")]
    assert lines[0] == ">>> Call to main_solution"
    assert "...... values = [1, 2]" in lines
    assert "7 | def main_solution(values, label):" in lines
    assert "8 |     total = helper(values)" in lines
    assert ">>> Call to helper" in lines  # depth 2 follows the call
    assert "4 |         total += value" in lines
    assert lines[-1] == "<<< Return value from main_solution: {'label': 'x', 'total': 3}"
    assert "SOURCE IS UNAVAILABLE" not in result["trace"]
    assert result["trace_lines"] == len(lines)


def test_depth_one_does_not_follow_calls(sandbox):
    result = run_code(sandbox, TWO_FUNCTIONS, {"values": [1], "label": "y"}, depth=1)
    assert ">>> Call to helper" not in result["trace"]


def test_returned_value_is_the_full_value_as_json_not_snoops_abbreviation(sandbox):
    code = "def main_solution(n):\n    return [(i, str(i)) for i in range(n)]\n"
    result = run_code(sandbox, code, {"n": 200})
    assert json.loads(result["returned"]) == [[i, str(i)] for i in range(200)]
    assert "..." in result["trace"].strip().split("\n")[-1]  # snoop abbreviates in the trace


def test_inputs_are_objects_not_source_text(sandbox):
    tricky = "it's a \"quote\"\n', __import__('os').system('x'), '"
    code = "def main_solution(text, nested):\n    return [text, nested]\n"
    result = run_code(sandbox, code, {"text": tricky, "nested": {"a": [1, None, True]}})
    assert json.loads(result["returned"]) == [tricky, {"a": [1, None, True]}]


def test_memory_addresses_are_removed(sandbox):
    code = "class Box:\n    pass\n\ndef main_solution():\n    box = Box()\n    return 1\n"
    result = run_code(sandbox, code)
    assert "box = <program.Box object>" in result["trace"]
    assert " at 0x" not in result["trace"]


def test_same_run_twice_gives_byte_identical_traces_even_with_sets():
    code = ("def main_solution(words):\n    seen = set(words)\n    order = list(seen)\n"
            "    return order\n")
    kwargs = json.dumps({"words": ["pear", "fig", "apple", "kiwi", "plum", "lime"]})
    traces = []
    for _ in range(2):  # two separate jails: the hash seed is fixed, not inherited by luck
        with Sandbox(SandboxSettings(preload=())) as box:
            traces.append(box.run(code, "main_solution", kwargs, 1)["trace"])
    assert traces[0] == traces[1]


def test_an_exception_is_an_error_with_its_trace(sandbox):
    result = run_code(sandbox, "def main_solution(a):\n    return 1 / a\n", {"a": 0})
    assert result["status"] == "error"
    assert "ZeroDivisionError" in result["detail"]
    assert "!!! ZeroDivisionError" in result["trace"]


def test_a_program_that_interrupts_itself_gets_keyboardinterrupt_as_in_any_python(sandbox):
    """The zygote (the jail's PID 1) ignores SIGINT; the runs it forks must not."""
    code = ("import os, signal, time\n\ndef main_solution():\n    try:\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n        time.sleep(1)\n"
            "    except KeyboardInterrupt:\n        return 'interrupted'\n")
    result = run_code(sandbox, code)
    assert json.loads(result["returned"]) == "interrupted"


def test_a_program_may_use_threads_and_signals_in_its_forked_run(sandbox):
    """Runs are forked without Python's at-fork callbacks (zygote._fork): the child is
    still a whole Python, with its main thread, its own threads and its signal handlers."""
    code = """\
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

class Rang(Exception):
    pass

def ring(number, frame):
    raise Rang(number)

def square(x):
    return x * x

def main_solution(n):
    with ThreadPoolExecutor(max_workers=3) as pool:
        squares = list(pool.map(square, range(n)))
    worker = threading.Thread(target=square, args=(3,))
    worker.start()
    worker.join()
    signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, 0.01)
    try:
        time.sleep(1)
        caught = False
    except Rang as rang:
        caught = rang.args[0] == signal.SIGALRM
    return [sum(squares), threading.current_thread() is threading.main_thread(),
            threading.active_count(), caught]
"""
    for _ in range(2):
        result = run_code(sandbox, code, {"n": 5})
        assert result["status"] == "returned", result.get("detail")
        assert json.loads(result["returned"]) == [30, True, 1, True]


def test_a_missing_module_is_named(sandbox):
    result = run_code(sandbox, "import no_such_module_xyz\n\ndef main_solution():\n    return 1\n")
    assert (result["status"], result["reason"], result["module"]) == (
        "error", "missing_module", "no_such_module_xyz")


def test_the_trace_budget_stops_a_runaway_program_at_once():
    """At once: the dry run counts the budget's lines (milliseconds) and settles the run; snoop
    never formats them. A 10 s limit gives the dry run a second, which no busy machine uses
    up on 10,000 line events (the session jail's 2 s left it 0.2 s). Without elision, which
    would trace it again (test_elision)."""
    code = "def main_solution():\n    i = 0\n    while True:\n        i += 1\n"
    with Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=10.0, elide=False),
                                 preload=())) as box:
        result = run_code(box, code)
    assert (result["status"], result["dry_run"]) == ("trace_limit", "over_budget"), result
    assert result["elapsed_s"] < 2.0


@pytest.mark.alone  # a time limit raced: a busy machine decides it
def test_without_the_dry_run_the_budget_still_stops_a_runaway_and_traces_are_the_same(sandbox):
    code = "def main_solution(n):\n    i = 0\n    while i < n:\n        i += 1\n    return i\n"
    runaway = sandbox.run(code, "main_solution", '{"n": 100000000}', 1, dry_run=False,
                          elide=False)
    assert runaway["status"] == "trace_limit"
    assert runaway["elapsed_s"] < 1.0
    short = [sandbox.run(code, "main_solution", '{"n": 3}', 1, dry_run=dry) for dry in (True, False)]
    assert short[0]["trace"] == short[1]["trace"] and short[0]["returned"] == "3"


def test_libraries_are_not_traced_only_the_program(sandbox):
    code = ("import json\nfrom collections import OrderedDict\n\ndef main_solution(s):\n"
            "    data = json.loads(s)\n    return OrderedDict(sorted(data.items()))\n")
    result = run_code(sandbox, code, {"s": '{"b": 1, "a": 2}'}, depth=5)
    assert result["status"] == "returned"
    assert ">>> Call to" not in result["trace"].split("\n", 1)[1]  # nothing but main_solution


def test_numpy_values_are_returned_as_json(sandbox):
    code = ("import numpy as np\n\ndef main_solution(n):\n    a = np.arange(n)\n"
            "    return {'sum': a.sum(), 'items': a}\n")
    result = run_code(sandbox, code, {"n": 4})
    assert json.loads(result["returned"]) == {"sum": 6, "items": [0, 1, 2, 3]}


def test_library_parts_that_load_on_first_use_are_loaded_once_in_the_zygote(sandbox):
    # numpy 2 imports numpy.ma on first access, which snoop's repr of any array makes
    code = ("import sys\nimport numpy as np\n\ndef main_solution():\n    loaded = 'numpy.ma' in sys.modules\n"
            "    grid = np.zeros((2, 2))\n    return [loaded, 'numpy.ma' in sys.modules]\n")
    result = run_code(sandbox, code)
    assert json.loads(result["returned"]) == [True, True]
    assert "grid = array([[0., 0.]," in result["trace"]


@pytest.mark.alone  # an import raced against the time limit: a busy machine decides it
def test_an_unpreloaded_library_still_imports_inside_the_jail():
    with Sandbox(SandboxSettings(preload=())) as box:
        result = box.run("import sympy\n\ndef main_solution():\n    return str(sympy.sqrt(8))\n",
                         "main_solution", "{}", 1)
    assert json.loads(result["returned"]) == "2*sqrt(2)"


def test_a_timeout_is_reported_and_the_jail_keeps_working():
    limits = SandboxLimits(timeout_s=0.5)
    with Sandbox(SandboxSettings(limits=limits, preload=())) as box:
        slow = box.run("import time\n\ndef main_solution():\n    time.sleep(30)\n",
                       "main_solution", "{}", 1)
        after = box.run("def main_solution():\n    return 7\n", "main_solution", "{}", 1)
    assert slow["status"] == "timeout"
    assert slow["elapsed_s"] < 2
    assert after["returned"] == "7"


def test_the_dry_run_never_stops_a_trace_that_fits_the_budget(sandbox):
    code = ("def main_solution(n):\n    total = 0\n    for i in range(n):\n        total += i\n"
            "    return total\n")
    roomy = SandboxLimits(max_run_lines=10_000, timeout_s=2.0)
    with Sandbox(SandboxSettings(limits=roomy, preload=())) as box:
        lengths = {n: box.run(code, "main_solution", json.dumps({"n": n}), 1)["trace_lines"]
                   for n in range(60, 80)}
    n_just_under = max(n for n, lines in lengths.items() if lines < 300)
    budget = SandboxLimits(max_run_lines=300, timeout_s=2.0, elide=False)
    with Sandbox(SandboxSettings(limits=budget, preload=())) as tight:
        fits = run_code(tight, code, {"n": n_just_under})
        assert fits["status"] == "returned" and fits["trace_lines"] == lengths[n_just_under] > 290
        assert run_code(tight, code, {"n": n_just_under + 1})["status"] == "trace_limit"


COMPREHENSION_THEN_LOOP = """\
def residues(n):
    return {i % 1000 for i in range(n)}

def main_solution(n, inline):
    kinds = {i % 1000 for i in range(n)} if inline else residues(n)
    total = 0
    for kind in sorted(kinds):
        total += kind
    return total
"""


@pytest.mark.alone  # a time limit raced: a busy machine decides it
@pytest.mark.parametrize(("inline", "depth", "dry_run"), [
    (True, 1, "over_budget"), (False, 2, "over_budget"),
    (False, 1, "abandoned"),  # snoop traces neither residues nor its comprehension
])
def test_a_dry_run_inside_a_long_comprehension_of_a_traced_frame_gets_the_whole_limit(
        inline, depth, dry_run):
    # The dry run goes through the ten million items at full speed, where snoop would pay
    # every one of them (far past the limit): past its share it goes on, and settles the run.
    # (a run budget the loop after it passes: 1,000 iterations, 3,000 lines)
    limits = SandboxLimits(timeout_s=3.0, max_run_lines=300, elide=False)
    with Sandbox(SandboxSettings(limits=limits, preload=())) as box:
        result = run_code(box, COMPREHENSION_THEN_LOOP, {"n": 10**7, "inline": inline}, depth)
    assert (result["status"], result["dry_run"]) == ("trace_limit", dry_run)
    assert result["elapsed_s"] < 3.0


@pytest.mark.alone  # a time limit raced: a busy machine decides it
def test_a_comprehension_that_runs_past_the_whole_limit_in_the_dry_run_is_a_timeout():
    code = ("import itertools\n\ndef main_solution():\n"
            "    return [i for i in itertools.count() if i < 0]\n")
    with Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=1.0), preload=())) as box:
        result = run_code(box, code)
        after = run_code(box, "def main_solution():\n    return 7\n")
    assert (result["status"], result["dry_run"]) == ("timeout", "timeout")
    assert result["elapsed_s"] < 1.5  # the traced run, which could only be slower, is skipped
    assert after["returned"] == "7"


@pytest.mark.alone  # the dry run races its share of the time limit: a busy machine abandons it
def test_the_dry_runs_side_effects_do_not_reach_the_real_run(sandbox):
    code = ("import os\n\ncalls = []\n\ndef main_solution(items):\n    calls.append(1)\n"
            "    items.append(len(calls))\n    seen = os.path.exists('mark')\n"
            "    open('mark', 'w').close()\n    return [items, seen]\n")
    result = run_code(sandbox, code, {"items": []})
    assert result["dry_run"] == "fits"
    assert json.loads(result["returned"]) == [[1], False]  # nor its files in the scratch


def test_recursion_deeper_than_the_depth_is_not_counted_against_the_budget(sandbox):
    # snoop traces fib's frames only within depth 2 of main_solution; the dry run must agree.
    code = ("def fib(k):\n    if k < 2:\n        return k\n    return fib(k - 1) + fib(k - 2)\n\n"
            "def main_solution(n):\n    return fib(n)\n")
    result = run_code(sandbox, code, {"n": 16}, depth=2)
    assert result["status"] == "returned" and json.loads(result["returned"]) == 987


def test_the_stdlib_jail_has_no_numpy_and_the_numpy_jail_has_it_preloaded():
    """cheap_repr would import numpy by itself; the stdlib jail keeps it out (cheaper forks)."""
    code = "import sys\ndef main_solution():\n    return 'numpy' in sys.modules\n"
    with Sandbox(SandboxSettings(preload=())) as bare:
        assert bare.run(code, "main_solution", "{}", 1)["returned"] == "false"
        assert "numpy" not in bare.info["preloaded"]
    with Sandbox(SandboxSettings(preload=("numpy",))) as lean:
        assert lean.run(code, "main_solution", "{}", 1)["returned"] == "true"


FLOOR_TRAPS = {
    # snoop leaves out "total = 0" after the line `total = 0`, and a nested def's own name
    "variables_that_read_like_their_line": ("""\
def main_solution(n):
    total = 0
    def step(x):
        return x + 1
    for i in range(n):
        total = 0
        total = step(total)
    return total
""", {"n": 30}, 2),
    # a generator expression counts as a call for snoop's depth: banner is not traced
    "calls_from_a_generator_expression": ("""\
def banner(x):
    y = 0
    for k in range(6):
        y += k * x
    return y

def main_solution(n):
    return sum(banner(i) for i in range(n))
""", {"n": 40}, 2),
    # after an exception leaves a callee, the caller's handler is no switch of frame
    "exceptions_through_frames": ("""\
def risky(k):
    if k % 2:
        raise ValueError(k)
    return k

def main_solution(n):
    caught = []
    for k in range(n):
        try:
            risky(k)
        except ValueError:
            caught.append(k)
    return len(caught)
""", {"n": 20}, 2),
    "generators_and_comprehensions": ("""\
def evens(n):
    for i in range(n):
        if i % 2 == 0:
            yield i

def main_solution(n):
    squares = [i * i for i in evens(n)]
    table = {i: i for i in squares}
    return len(table)
""", {"n": 30}, 2),
    # a generator traced on its first resume, then resumed from frames snoop does not trace:
    # its frame keeps the first resume's trace function, and those resumes print nothing
    "a_generator_resumed_from_untraced_frames": ("""\
def counter():
    i = 0
    while True:
        i += 1
        yield i

def pull(g, k):
    return below(g, k)

def below(g, k):
    return [next(g) for _ in range(k)][-1]

def main_solution(n):
    g = counter()
    first = next(g)
    total = 0
    for j in range(n):
        total += j
    last = pull(g, 60)
    return [first, total, last]
""", {"n": 30}, 2),
}


@pytest.mark.parametrize("name", FLOOR_TRAPS)
def test_the_dry_run_counts_a_floor_of_snoops_lines_never_more(name):
    """At a budget one line above the trace's own length the dry run must let it through."""
    code, kwargs, depth = FLOOR_TRAPS[name]
    roomy = SandboxLimits(max_run_lines=10_000, timeout_s=5.0, dry_run=False)
    with Sandbox(SandboxSettings(limits=roomy, preload=())) as box:
        whole = box.run(code, "main_solution", json.dumps(kwargs), depth)
    assert whole["status"] == "returned" and whole["trace_lines"] > 40
    tight = SandboxLimits(max_run_lines=whole["trace_lines"] + 1, timeout_s=5.0, elide=False)
    with Sandbox(SandboxSettings(limits=tight, preload=())) as box:
        fitted = box.run(code, "main_solution", json.dumps(kwargs), depth)
        kwargs_twice = {k: v * 3 if isinstance(v, int) else v for k, v in kwargs.items()}
        runaway = box.run(code, "main_solution", json.dumps(kwargs_twice), depth)
    assert fitted["status"] == "returned" and fitted["trace"] == whole["trace"]
    assert runaway["status"] == "trace_limit"


def test_numpy_empty_arrays_trace_the_same_every_time(sandbox):
    """np.empty returns whatever memory held; in the jail it returns zeros (one of its
    allowed values), so its trace is reproducible. Object arrays still start as None."""
    code = ("import numpy as np\n\ndef main_solution(n):\n    grid = np.empty((n, n))\n"
            "    same = np.empty_like(grid)\n    names = np.empty(2, dtype=object)\n"
            "    return [grid.tolist(), same.tolist(), names.tolist()]\n")
    runs = [run_code(sandbox, code, {"n": 3}) for _ in range(3)]
    assert len({run["trace"] for run in runs}) == 1
    assert json.loads(runs[0]["returned"]) == [[[0.0] * 3] * 3, [[0.0] * 3] * 3, [None, None]]


CACHED_PROGRAM = """\
import time

def area(width, height):
    return width * height

def main_solution(boxes, slow):
    if slow:
        time.sleep(30)
    total = 0
    for width, height in boxes:
        total += area(width, height)
    try:
        total / (len(boxes) - len(boxes))
    except ZeroDivisionError:
        total = -total
    return [total, {b[0] for b in boxes}]
"""
OTHER_PROGRAM = "def main_solution(boxes, slow):\n    return len(boxes)\n"


def test_a_programs_later_runs_find_it_compiled_and_parsed_and_trace_the_same():
    inputs = [{"boxes": [[i, i + 1], [2, 3]] * (i % 3 + 1), "slow": False} for i in range(4)]
    with Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=1.0), preload=())) as box:
        def run(code, kwargs):  # no dry run: only the runs themselves decide what is cached
            return run_code(box, code, kwargs, depth=2, dry_run=False)

        in_a_row = [run(CACHED_PROGRAM, kwargs) for kwargs in inputs]
        alternating = []
        for kwargs in inputs:  # another program between two runs: nothing is cached
            run(OTHER_PROGRAM, kwargs)
            alternating.append(run(CACHED_PROGRAM, kwargs))
        # a dry run that fits counts as a run that ended safely: the real run finds it ready
        run(OTHER_PROGRAM, inputs[0])
        after_dry_run = run_code(box, CACHED_PROGRAM, inputs[0], depth=2)
    assert [run["cached"] for run in in_a_row] == ["", "code+source", "code+source", "code+source"]
    assert {run["cached"] for run in alternating} == {""}
    for cached, fresh in zip(in_a_row, alternating, strict=True):
        assert cached["status"] == "returned" and cached["trace_lines"] > 10
        assert (cached["trace"], cached["returned"]) == (fresh["trace"], fresh["returned"])
    assert (after_dry_run["dry_run"], after_dry_run["cached"]) == ("fits", "code+source")
    assert after_dry_run["trace"] == alternating[0]["trace"]


@pytest.mark.alone  # a 0.5 s time limit raced: a busy machine decides it
def test_the_zygote_compiles_a_program_only_after_a_run_of_it_ended_safely():
    fine, slow = ({"boxes": [[1, 2]], "slow": flag} for flag in (False, True))
    with Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=0.5), preload=())) as box:
        runs = [run_code(box, CACHED_PROGRAM, kwargs, dry_run=False)
                for kwargs in (slow, fine, fine, slow, fine)]
        # a dry run that ran out of its time share is no safe ending either
        box.run(OTHER_PROGRAM, "main_solution", json.dumps(fine), 1)
        abandoned = run_code(box, CACHED_PROGRAM, slow)
    assert [run["status"] for run in runs] == ["timeout", "returned", "returned", "timeout",
                                               "returned"]
    # after a timeout nothing new is built; what a safe run allowed stays
    assert [run.get("cached") for run in runs] == [None, "", "code+source", None, "code+source"]
    assert (abandoned["status"], abandoned["dry_run"]) == ("timeout", "abandoned")


@pytest.mark.alone  # the dry run races its share of the limit: a busy machine decides it
def test_runs_report_the_dry_runs_outcome_and_a_program_rejected_by_it_is_not_parsed(sandbox):
    runaway = "def main_solution(n):\n    i = 0\n    while i < n:\n        i += 1\n    return i\n"
    over = [sandbox.run(runaway, "main_solution", '{"n": 1000000000}', 1, elide=False)
            for _ in range(2)]
    short = run_code(sandbox, runaway, {"n": 2})
    assert [run["dry_run"] for run in over] == ["over_budget", "over_budget"]
    assert [run["cached"] for run in over] == ["", "code"]  # snoop never needs its source
    # the dry run that fitted ended safely: the zygote parsed the program for its real run
    assert (short["dry_run"], short["cached"], short["returned"]) == ("fits", "code+source", "2")
    skipped = sandbox.run(runaway, "main_solution", '{"n": 2}', 1, dry_run=False)
    assert "dry_run" not in skipped and skipped["cached"] == "code+source"
    with Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=1.0), preload=())) as box:
        slow = box.run("import time\n\ndef main_solution():\n    time.sleep(0.3)\n    return 1\n",
                       "main_solution", "{}", 1)
    assert (slow["dry_run"], slow["returned"]) == ("abandoned", "1")


def test_aarch64_nodes_get_a_filter_of_their_own_and_other_machines_none(monkeypatch):
    from trace_workers.jail import seccomp
    from trace_workers.jail.sandbox import SandboxError, check_arch

    for machine in ("x86_64", "aarch64"):
        program = seccomp.filter_program(machine)
        assert program and len(program) % 8 == 0  # whole BPF instructions
        assert set(seccomp.refused_calls(machine)) == set(seccomp.REFUSED_X86_64)  # the same calls
    # the filter admits only its own ABI: aarch64's audit arch, not x86_64's, is the one it loads
    assert seccomp.AUDIT_ARCH_AARCH64.to_bytes(4, "little") in seccomp.filter_program("aarch64")
    assert seccomp.AUDIT_ARCH_X86_64.to_bytes(4, "little") not in seccomp.filter_program("aarch64")
    assert seccomp.filter_program("riscv64") is None and seccomp.filter_name("riscv64") is None
    check_arch(allowed=False)  # this machine has one
    import platform

    monkeypatch.setattr(platform, "machine", lambda: "riscv64")  # no such node here
    with pytest.raises(SandboxError, match="--allow-unfiltered-arch"):
        check_arch(allowed=False)
    check_arch(allowed=True)


def test_a_venv_under_tmp_is_seen_by_the_jail_under_another_path(tmp_path, sandbox):
    """A project cloned under /tmp keeps its venv there, where the jail mounts its scratch: the
    jail sees it elsewhere. (A link under /tmp to this venv is a venv under /tmp to Python.)"""
    import subprocess
    import sys
    from pathlib import Path

    from conftest import ROOT

    link = tmp_path / "venv"
    link.symlink_to(Path(sys.prefix))
    script = (
        "import json, sys\n"
        "from trace_workers.jail.sandbox import Sandbox, SandboxSettings\n"
        "box = Sandbox(SandboxSettings())\n"
        "try:\n"
        "    result = box.run('def main_solution(a):\\n    return a * 2\\n', 'main_solution',\n"
        "                     json.dumps({'a': 21}), 1)\n"
        "finally:\n"
        "    box.close()\n"
        "print(json.dumps([sys.prefix, result['status'], result.get('returned')]))\n")
    done = subprocess.run([str(link / "bin" / "python"), "-c", script], capture_output=True,
                          text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    prefix, status, returned = json.loads(done.stdout.strip().splitlines()[-1])
    assert prefix.startswith("/tmp/") and (status, returned) == ("returned", "42")
