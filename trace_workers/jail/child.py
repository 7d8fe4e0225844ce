"""One run, in the forked child (runs inside the jail): drop the protocol pipes, set the
limits, compile the program under its fixed file name, call the function under snoop (or the
dry run's counter) and write one JSON result to the private pipe. Never returns.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from trace_workers.jail import tracing
from trace_workers.jail.dry_run import run_dry
from trace_workers.jail.limits import MAX_FD, set_limits
from trace_workers.jail.protocol import (
    PROGRAM_FILENAME,
    OutputSink,
    classify_exception,
    json_default,
    literal_text,
    parse_call,
    send,
)
from trace_workers.jail.tracing import PROGRAMS, TraceBuffer, set_program_lines


def run_child(request: dict, result_fd: int, limits: dict) -> None:
    """Runs in the forked child; never returns."""
    marks = {"child_start": time.monotonic()}
    # the zygote made fds 0 and 1 /dev/null, its sys.stdin reads fd 0, its cwd is the scratch
    os.dup2(0, 2)
    os.closerange(3, result_fd)  # close_range(2): the protocol pipes and the rest
    os.closerange(result_fd + 1, MAX_FD)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in any Python (see main)
    sink = OutputSink(result_fd, limits["max_stdout_bytes"])
    sys.stdout = sys.stderr = sink
    buffer = TraceBuffer(result_fd, limits["max_trace_lines"], limits["max_trace_bytes"])
    started = time.perf_counter()
    result: dict = {}
    marks["setup"] = time.monotonic()
    try:
        set_limits(limits)
        tracing.current_buffer = buffer
        marks["config"] = time.monotonic()
        code = request["code"]
        set_program_lines(code)
        namespace = {"__name__": "program", "__file__": PROGRAM_FILENAME, "__builtins__": __builtins__}
        compiled = PROGRAMS.compiled_for(code)
        buffer.notes["cached"] = PROGRAMS.holds if compiled else ""
        exec(compiled or compile(code, PROGRAM_FILENAME, "exec"), namespace)
        if "call" in request:  # call format: literals, or expressions run in the program's namespace
            args, kwargs = parse_call(request["call"], namespace)
        else:
            args, kwargs = (), json.loads(request["kwargs"])
        marks["exec"] = time.monotonic()
        function = namespace.get(request["funcname"])
        if not callable(function):
            result = {"status": "error", "reason": "missing_function",
                      "detail": f"{request['funcname']!r} is not defined by the program"}
        elif request.get("phase") == "dry_run":
            run_dry(function, args, kwargs, request["depth"], limits, result_fd, marks)
        else:
            if request.get("phase") == "elided":
                from trace_workers.jail.elision import loop_bodies  # imported by the zygote

                tracer = tracing.ELIDING_TRACER(depth=request["depth"], loops=loop_bodies(code))
                buffer.notes["elided"] = tracer.spans  # filled in as the run goes
            else:
                tracer = tracing.TRACER(depth=request["depth"])
            returned = tracer(function)(*args, **kwargs)
            try:
                if "call" in request:
                    encoded = literal_text(returned)
                else:
                    encoded = json.dumps(returned, default=json_default, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                result = {"status": "error", "reason": "unserializable_return", "detail": str(exc)[:500]}
            else:
                result = {"status": "returned", "returned": encoded}
    except BaseException as exc:  # the program is untrusted: anything may escape it
        status, reason = classify_exception(exc)
        result = {"status": status, "reason": reason,
                  "detail": f"{type(exc).__name__}: {exc}"[:500]}
        if reason == "missing_module":
            result["module"] = getattr(exc, "name", None)
    result["trace"] = buffer.text()
    result["trace_lines"] = buffer.lines
    result.update(buffer.notes)
    result["run_s"] = time.perf_counter() - started
    marks["done"] = time.monotonic()
    result["marks"] = marks
    try:
        send(result_fd, result)
    except BaseException:
        os._exit(71)
    os._exit(0)
