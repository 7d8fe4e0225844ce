"""What the zygote does once before it freezes (runs inside the jail): import the preloaded
libraries, load their lazy parts, and trace one small program so that every child starts warm.
"""

from __future__ import annotations

import importlib
import linecache
import os
import sys
import sysconfig

from trace_workers.jail import tracing
from trace_workers.jail.tracing import TraceBuffer, set_program_lines, source_cache


def preload_libraries(modules: list[str]) -> tuple[dict, dict]:
    loaded, missing = {}, {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except BaseException as exc:  # a broken optional library must not stop the jail
            missing[name] = f"{type(exc).__name__}: {exc}"[:200]
        else:
            loaded[name] = getattr(module, "__version__", None)
    return loaded, missing


def zero_filled_empty() -> None:
    """numpy.empty and empty_like hand out whatever the memory held, so a trace that shows
    such an array differs from run to run. Zeros are one of the values they may return: with
    them the program gets an allowed result, and the same trace every time. (Object arrays
    already start as None.)"""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return

    def zeroed(make):
        def wrapper(*args, **kwargs):
            result = make(*args, **kwargs)
            try:
                if not result.dtype.hasobject:
                    result[...] = numpy.zeros((), dtype=result.dtype)
            except Exception:  # an exotic subclass or dtype: leave it as numpy made it
                pass
            return result

        wrapper.__name__, wrapper.__qualname__, wrapper.__doc__ = (
            make.__name__, make.__qualname__, make.__doc__)
        wrapper.__module__ = "numpy"
        return wrapper

    numpy.empty, numpy.empty_like = zeroed(numpy.empty), zeroed(numpy.empty_like)


def load_lazy_parts() -> None:
    """Parts of the preloaded libraries that load on first use, loaded here once rather than
    in every child that reaches them: numpy 2 imports ``numpy.ma`` on first access, and
    cheap_repr's ndarray repr checks ``np.ma.MaskedArray``: about 9 ms in every run whose trace
    shows an array. One repr of an array also sets up numpy's printing."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return
    try:
        importlib.import_module("numpy.ma")
        import cheap_repr

        for value in (numpy.arange(3), numpy.zeros((2, 2)), numpy.float64(0.5)):
            cheap_repr.cheap_repr(value)
    except Exception:  # a saving only: a numpy without these still traces, as before
        pass


WARM_UP_FILENAME = "/program/warm_up.py"
WARM_UP_PROGRAM = """\
def helper(values, scale=2.0):
    found = {}
    for position, value in enumerate(values):
        if value % 3 == 0:
            found[value] = position * scale
    return found

def main_solution(n, word):
    numbers = [i * i for i in range(n)]
    letters = {c: word.count(c) for c in set(word)}
    pairs = tuple(zip(numbers, word))
    total, nothing, flag = 0, None, True
    for number in numbers:
        total += number
        if number > 20:
            flag = not flag
    try:
        ratio = total / (n - n)
    except ZeroDivisionError as error:
        ratio = str(error)
    found = helper(numbers)
    return {"total": total, "letters": sorted(letters), "pairs": len(pairs),
            "ratio": ratio, "found": len(found), "flag": flag, "nothing": nothing}
"""


def warm_up_interpreter() -> str:
    """Trace one small program in the zygote before it freezes, so that each child starts
    with snoop's and cheap_repr's code paths already run (Python 3.11 specialises bytecode
    on first use, writing into code objects that every child would otherwise copy and
    specialise again). Its traces, source and tracer state are then dropped: the output
    of a run never depends on it (``tests/test_fast_snoop.py`` holds a warm jail to a cold one).
    Returns how it went: "done", or why it failed (a saving only: the jail works without)."""
    set_program_lines(WARM_UP_PROGRAM, WARM_UP_FILENAME)
    namespace = {"__name__": "warm_up", "__file__": WARM_UP_FILENAME}
    saved, outcome = tracing.current_buffer, "done"
    try:
        exec(compile(WARM_UP_PROGRAM, WARM_UP_FILENAME, "exec"), namespace)
        for depth in (1, 2):
            tracing.current_buffer = TraceBuffer(-1, 10**6, 10**9)
            tracing.TRACER(depth=depth)(namespace["main_solution"])(n=14, word="warm up")
            if "<<< Return value from main_solution" not in tracing.current_buffer.text():
                outcome = "failed: the warm-up's trace did not return"
    except Exception as exc:
        outcome = f"failed: {type(exc).__name__}: {exc}"[:200]
    finally:
        tracing.current_buffer = saved
        linecache.cache.pop(WARM_UP_FILENAME, None)
        cache = source_cache()
        if cache is not None:
            cache.clear()
        config = getattr(tracing.TRACER, "config", None)
        if config is not None:
            config.last_frame = None
    return outcome


def untraced_directories() -> tuple[str, ...]:
    """Library code is never traced: only frames from the program itself are."""
    paths = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return tuple(sorted(paths))
