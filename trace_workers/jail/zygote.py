"""The process that lives inside the bubblewrap jail: import once, fork one child per run.

This file runs *inside* the sandbox, where the project checkout is not visible, so it and the
modules the jail holds beside it (``jail_*.py``: protocol, limits, tracing, dry run, child,
supervisor, preload; and ``fast_snoop.py``) stand alone: standard library and snoop. It
speaks JSON lines on stdin/stdout with ``trace_workers.jail.sandbox.Sandbox``:

    <- {"ready": true, "preloaded": {...}, "missing": [...]}            once, after imports
    -> {"code": ..., "funcname": ..., "kwargs": "<json>", "depth": N}   one per run
       (call format: "call": "<Python-literal argument list>" instead of "kwargs")
    <- {"status": ..., "trace": ..., "returned": "<json>", ...}         one per run
       (call format: "returned" is the value's repr, which literal_eval reads back)

Each run is a fork of this process. The child drops the protocol pipes, sets its rlimits,
compiles the program under a fixed file name (so trace line numbers are the program's own),
calls the function under snoop and writes one JSON result to a private pipe. A run with a dry
run (``dry_run``) forks first a child that only counts lines; when they fit the budget, a
fresh child makes the real run. The parent enforces the wall-clock limit and, after every
child, kills every other process in the jail's PID namespace (``kill(-1)``), so orphans that
called setsid() die too, and wipes the scratch.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys

from trace_workers.jail import tracing
from trace_workers.jail.limits import SCRATCH, note_own_size
from trace_workers.jail.preload import (
    load_lazy_parts,
    preload_libraries,
    untraced_directories,
    warm_up_interpreter,
    zero_filled_empty,
)
from trace_workers.jail.protocol import INT_DIGITS, RESTART_EXIT_CODE, send
from trace_workers.jail.supervisor import ScratchNotWiped, finish_run, run_request, undumpable
from trace_workers.jail.tracing import PROGRAMS, eliding_tracer, snoop_tracer


def main() -> None:
    sys.set_int_max_str_digits(INT_DIGITS)
    limits = json.loads(sys.argv[1])
    preload = json.loads(sys.argv[2])
    undumpable()
    # as PID 1 the zygote gets only the signals it handles: none (Python's SIGINT handler
    # would let a run raise KeyboardInterrupt in it)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    sys.stdin = open(0, closefd=False)  # what a run reads: nothing
    os.chdir(SCRATCH)
    # cheap_repr (snoop's repr library) imports numpy and pandas at import time when it can,
    # to register their reprs; each makes every fork dearer (pandas triples its size), so they
    # stay out unless preloaded on purpose. A jail without them only runs programs that
    # cannot reach them (the trace actor routes by the program's imports).
    hidden = {name: None for name in ("numpy", "pandas", "django") if name not in preload}
    sys.modules.update(hidden)
    import snoop.tracer

    for name in hidden:
        del sys.modules[name]
    loaded, missing = preload_libraries(["snoop", *preload])
    zero_filled_empty()
    load_lazy_parts()
    snoop.tracer.internal_directories = untraced_directories()
    tracing.TRACER = snoop_tracer(limits.get("fast_tracer", True))
    tracing.ELIDING_TRACER = eliding_tracer(tracing.TRACER)
    warm_up = warm_up_interpreter() if limits.get("warm_up", True) else "off"
    gc.collect()
    gc.freeze()  # keep forked children from touching (copying) every preloaded object
    note_own_size(limits)
    send(protocol_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                         "python": sys.version.split()[0], "preloaded": loaded, "missing": missing,
                         "warm_up": warm_up})
    for raw in protocol_in:
        request = json.loads(raw)
        pid, reaped = None, True
        try:
            PROGRAMS.prepare(request["code"])
            result, pid, reaped = run_request(request, limits)
        except ScratchNotWiped as exc:  # between the dry run and the run
            send(protocol_out, {"status": "crashed", "detail": f"zygote: {exc}"})
            sys.exit(RESTART_EXIT_CODE)
        except Exception as exc:  # keep the jail alive; the run is reported as crashed
            result = {"status": "crashed", "detail": f"zygote: {type(exc).__name__}: {exc}"[:500]}
        send(protocol_out, result)
        PROGRAMS.remember(request.get("code"), result)
        if pid is not None:
            try:
                finish_run(pid, reaped, limits)
            except ScratchNotWiped:
                sys.exit(RESTART_EXIT_CODE)  # the sandbox starts a fresh jail for the next run


if __name__ == "__main__":
    main()
