"""The process that lives inside the bubblewrap jail: import once, fork one child per run.

This file runs *inside* the sandbox, where the project checkout is not visible, so it must
stand alone: standard library, snoop, and ``fast_snoop.py``, which the jail holds beside it. It
speaks JSON lines on stdin/stdout with ``trace_workers.sandbox.Sandbox``:

    <- {"ready": true, "preloaded": {...}, "missing": [...]}            once, after imports
    -> {"code": ..., "funcname": ..., "kwargs": "<json>", "depth": N}   one per run
       (call format: "call": "<Python-literal argument list>" instead of "kwargs")
    <- {"status": ..., "trace": ..., "returned": "<json>", ...}         one per run
       (call format: "returned" is the value's repr, which literal_eval reads back)

Each run is a fork of this process. The child drops the protocol pipes, sets its rlimits,
compiles the program under a fixed file name (so trace line numbers are the program's own),
calls the function under snoop and writes one JSON result to a private pipe. A run with a dry
run (``_dry_run``) forks first a child that only counts lines; when they fit the budget, a
fresh child makes the real run. The parent enforces the wall-clock limit and, after every
child, kills every other process in the jail's PID namespace (``kill(-1)``), so orphans that
called setsid() die too, and wipes the scratch.
"""

from __future__ import annotations

import ast
import errno
import gc
import importlib
import inspect
import json
import linecache
import math
import os
import pprint
import re
import resource
import select
import signal
import sys
import sysconfig
import time

PROGRAM_FILENAME = "/program/main.py"
SCRATCH = "/tmp"
WRITABLE = (SCRATCH, "/dev/shm")  # the jail's only writable places, wiped after every run
RESTART_EXIT_CODE = 75  # the zygote's exit when it cannot wipe them: "start a fresh jail"
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# Python 3.11 refuses int <-> str conversions past 4,300 digits (a guard against quadratic work
# on untrusted text), but a PyEdu value may pass that (2000! has 5,736 digits), and a value that
# the tracer cannot print or the job cannot read back is lost: the jail and every process of the
# job allow up to INT_DIGITS digits (~0.1 s a conversion) instead.
INT_DIGITS = 100_000
# a run closes every fd up to this but its result pipe (os.closerange: one close_range call)
MAX_FD = min(max(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1 << 16), 1 << 30)
# errnos that mean "the jail said no" rather than "the program is wrong".
BLOCKED_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENETUNREACH, errno.ENETDOWN,
    errno.EHOSTUNREACH, errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.ENOSPC,
    errno.EAGAIN, errno.EMFILE, errno.ENFILE, errno.EFBIG, errno.EDQUOT,
}


def _send(fd: int, message: dict) -> None:
    data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class TraceBuffer:
    """snoop's output sink. Stops the run the moment the trace passes its budget."""

    def __init__(self, result_fd: int, max_lines: int, max_bytes: int):
        self.parts: list[str] = []
        self.lines = 0
        self.size = 0
        self.result_fd = result_fd
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        # facts about the run that every message of the child reports: "cached" (what of the
        # program the zygote had ready); the zygote adds the dry run's outcome itself
        self.notes: dict = {}

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.lines += text.count("\n")
        self.size += len(text)
        if self.lines >= self.max_lines or self.size > self.max_bytes:
            _send(self.result_fd, {
                **self.notes,
                "status": "trace_limit",
                "detail": f"trace passed its budget ({self.lines} lines, {self.size} chars)",
                "trace_lines": self.lines,
            })
            os._exit(0)

    def text(self) -> str:
        return ADDRESS.sub("", "".join(self.parts))


class OutputSink:
    """Stands in for the program's stdout/stderr: discards, but stops a program that floods it."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, result_fd: int, max_bytes: int, on_overflow=None):
        self.result_fd = result_fd
        self.max_bytes = max_bytes
        self.size = 0
        self.on_overflow = on_overflow

    def write(self, text) -> int:
        self.size += len(text)
        if self.size > self.max_bytes:
            if self.on_overflow:
                self.on_overflow()
            _send(self.result_fd, {
                "status": "trace_limit",
                "detail": f"program printed more than {self.max_bytes} bytes",
            })
            os._exit(0)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "program output is not a file")


def _json_default(value):
    """JSON for values the corpus' functions return that json cannot encode by itself."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, complex):
        return [value.real, value.imag]
    raise TypeError(f"returned value of type {type(value).__name__} is not JSON serializable")


def _parse_call(text: str, namespace: dict | None = None) -> tuple[list, dict]:
    """``"1, (2, 3), key='x'"`` -> positional and keyword arguments. Literals are read with
    literal_eval; an argument that is an expression (``dict(a=1)``, ``table[:]``) is evaluated
    in the program's ``namespace``, here in the jail, after the program has run its top level."""
    call = ast.parse(f"_({text})", mode="eval").body
    if not isinstance(call, ast.Call) or any(isinstance(a, ast.Starred) for a in call.args) or any(
            k.arg is None for k in call.keywords):
        raise ValueError("the arguments are not a plain argument list")

    def value(node: ast.expr):
        try:
            return ast.literal_eval(node)
        except (ValueError, SyntaxError, TypeError):
            if namespace is None:
                raise
        code = compile(ast.Expression(node), PROGRAM_FILENAME, "eval")
        return eval(code, namespace)  # noqa: S307 - in the jail, as the program itself runs

    return [value(a) for a in call.args], {k.arg: value(k.value) for k in call.keywords}


def _literal_text(value) -> str:
    """repr of a value that ast.literal_eval reads back as an equal value, else TypeError."""
    text = repr(value)
    if len(text) > 1_000_000:
        raise ValueError("the returned value's repr is over 1 MB")
    try:
        same = ast.literal_eval(text) == value or text == repr(ast.literal_eval(text))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        same = False
    if not same:
        raise TypeError(f"returned value of type {type(value).__name__} has no literal form")
    return text


def _classify_exception(exc: BaseException) -> tuple[str, str | None]:
    """(status, reason) for an exception that escaped the program."""
    if isinstance(exc, MemoryError):
        return "memory", "memory"
    if isinstance(exc, ModuleNotFoundError):
        return "error", "missing_module"
    if isinstance(exc, OSError) and (
        exc.errno in BLOCKED_ERRNOS or type(exc).__name__ == "gaierror"
    ):
        return "sandbox", "sandbox"
    return "error", "error"


_current_buffer: TraceBuffer | None = None
TRACER = None  # the tracer class: fast_snoop's (default) or snoop's own


class ProgramCache:
    """The current program, compiled and parsed once in the zygote for all its runs.

    snoop parses a program's source (``executing.Source``: ``ast.parse`` and several walks
    over the tree, more than the rest of a short trace costs) in every run it traces, and the
    child compiles it in every run: each run is a fresh fork. A program's runs come one after
    the other, so from its second run on the zygote compiles it and builds snoop's Source
    before forking, and every later child finds both ready (a fork shares them). The source
    is untrusted: the zygote only compiles or parses a program after a run of it, or a dry
    run that fitted (either compiled it first), ended without crashing, timing out or running
    out of memory (a SyntaxError the zygote meets just leaves the program uncached), and
    builds the Source unless the dry run rejected that run (snoop would not need it). One
    program at a time.
    """

    SAFE_STATUSES = frozenset({"returned", "error", "trace_limit", "fits"})

    def __init__(self) -> None:
        self.text: str | None = None
        self.compiled = None
        self.holds = ""  # "", "code" or "code+source"
        self.previous: tuple[str, dict] | None = None  # the last run: (source, its verdict)

    def prepare(self, text: str) -> None:
        """Before forking a run of ``text``: make the cache hold it, when that is safe."""
        if text != self.text:
            self._clear()
        previous_text, verdict = self.previous or (None, {})
        if previous_text != text or verdict.get("status") not in self.SAFE_STATUSES:
            return
        try:
            if not self.holds:
                self.compiled = compile(text, PROGRAM_FILENAME, "exec")
                self.text, self.holds = text, "code"
            if self.holds == "code" and verdict.get("dry_run") != "over_budget":
                _set_program_lines(text)
                _snoop_source().for_filename(PROGRAM_FILENAME)
                self.holds = "code+source"
        except Exception:  # a program the zygote cannot compile or parse runs uncached
            self._clear()

    def remember(self, text: str, verdict: dict) -> None:
        self.previous = (text, {"status": verdict.get("status"), "dry_run": verdict.get("dry_run")})

    def compiled_for(self, text: str):
        return self.compiled if text == self.text else None

    def _clear(self) -> None:
        self.text = self.compiled = None
        self.holds = ""
        cache = _source_cache()
        if cache is not None:
            cache.clear()


def _snoop_source():
    import snoop.tracer

    return snoop.tracer.Source


def _source_cache() -> dict | None:
    """executing's cache of parsed sources, for snoop's Source class (None if its private
    layout ever changes: runs then parse in the child, as before)."""
    class_local = getattr(_snoop_source(), "_class_local", None)
    if class_local is None:
        return None
    cache = class_local("__source_cache_with_lines", {})
    return cache if isinstance(cache, dict) else None


def _set_program_lines(text: str, filename: str = PROGRAM_FILENAME) -> None:
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)


PROGRAMS = ProgramCache()


def _write_trace(text: str) -> None:
    _current_buffer.write(text)


def _snoop_tracer(fast: bool = True):
    """The tracer class, configured once in the zygote; each child points ``_current_buffer``
    at its own buffer. fast_snoop's tracer, or with ``fast=False`` snoop's own (the same
    trace, slower: kept to check the fast one against)."""
    import snoop
    from snoop.formatting import DefaultFormatter

    fast_snoop = _fast_snoop() if fast else None
    bases = (fast_snoop.FastFormatterMixin, DefaultFormatter) if fast else (DefaultFormatter,)

    class Formatter(*bases):
        """snoop's format, with the call line reduced to the function's name (as the
        reference method prints it): file paths would only leak jail paths into data."""

        def format_start(self, event):
            if event.comprehension_type:
                return [f"{event.comprehension_type}:"]
            if event.event == "enter":
                description = "Enter with block in"
            elif event.frame_info.is_generator:
                description = "Re-enter generator" if event.is_yield_value else "Start generator"
            else:
                description = "Call to"
            return [f">>> {description} {event.code_qualname()}"]

    config = snoop.Config(
        out=_write_trace, columns=(), color=False, replace_watch_extras=(),
        formatter_class=Formatter, pformat=pprint.pformat,
    )
    return fast_snoop.install(config) if fast else config.snoop


def _fast_snoop():
    """The module beside this file (in the jail), or the package's copy (outside it)."""
    try:
        import fast_snoop
    except ImportError:
        from trace_workers import fast_snoop
    return fast_snoop


def _status_kib(pid: int | str, fields: tuple[str, ...]) -> dict[str, int] | None:
    """Fields of /proc/PID/status (kB), None when the process is gone. (status, unlike
    smaps, needs no ptrace access: runs are non-dumpable.)"""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            text = status.read()
    except OSError:
        return None
    sizes = dict.fromkeys(fields, 0)
    for line in text.splitlines():
        name, _, value = line.partition(b":")
        if (field := name.decode()) in sizes:
            sizes[field] = int(value.split()[0])
    return sizes


def _run_memory_bytes(zygote_anon_bytes: int) -> int:
    """What a run's processes hold together: each one's anonymous memory beyond the zygote's
    (a fork starts sharing all of it) plus its shared memory (MAP_SHARED, /dev/shm). Memory
    that the run's own processes share after a fork counts once per process: a run that
    forks after filling memory is judged as if each copy were its own."""
    total = 0
    for name in os.listdir("/proc"):  # the jail's own /proc: only the jail's processes
        if not name.isdigit() or name == "1":
            continue
        sizes = _status_kib(name, ("RssAnon", "RssShmem"))
        if sizes:
            total += max(0, 1024 * sizes["RssAnon"] - zygote_anon_bytes) + 1024 * sizes["RssShmem"]
    return total


def _over_limits(limits: dict) -> dict | None:
    """The verdict on a run that went past what rlimits cannot hold, checked while it lasts:
    the memory of its processes together, and the files in its scratch (a tmpfs bounds their
    bytes, not their number: each costs kernel memory, and wiping them the next run's time)."""
    held = _run_memory_bytes(limits["zygote_anon_bytes"])
    if held > limits["memory_bytes"]:
        return {"status": "memory", "detail": (
            f"the run's processes held {held >> 20} MiB together, over its limit of "
            f"{limits['memory_bytes'] >> 20} MiB")}
    for folder in WRITABLE:
        usage = os.statvfs(folder)
        if usage.f_files - usage.f_ffree > MAX_SCRATCH_FILES:
            return {"status": "sandbox", "detail": (
                f"the run made more than {MAX_SCRATCH_FILES} files in {folder}")}
    return None


def _set_limits(limits: dict) -> None:
    # the zygote's size, read after its previous run (a child starts as big as the zygote)
    address_space = limits["zygote_vm_bytes"]  # (_note_own_size)
    address_space += limits["memory_bytes"]
    cpu = int(math.ceil(limits["timeout_s"])) + 1
    for name, value in (
        ("RLIMIT_AS", address_space),
        ("RLIMIT_CPU", cpu),
        ("RLIMIT_NPROC", limits["max_procs"]),
        ("RLIMIT_FSIZE", limits["max_file_bytes"]),
        ("RLIMIT_NOFILE", limits["max_open_files"]),
        ("RLIMIT_CORE", 0),
    ):
        resource.setrlimit(getattr(resource, name), (value, value))


def _child(request: dict, result_fd: int, limits: dict) -> None:
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
        _set_limits(limits)
        global _current_buffer
        _current_buffer = buffer
        marks["config"] = time.monotonic()
        code = request["code"]
        _set_program_lines(code)
        namespace = {"__name__": "program", "__file__": PROGRAM_FILENAME, "__builtins__": __builtins__}
        compiled = PROGRAMS.compiled_for(code)
        buffer.notes["cached"] = PROGRAMS.holds if compiled else ""
        exec(compiled or compile(code, PROGRAM_FILENAME, "exec"), namespace)
        if "call" in request:  # call format: literals, or expressions run in the program's namespace
            args, kwargs = _parse_call(request["call"], namespace)
        else:
            args, kwargs = (), json.loads(request["kwargs"])
        marks["exec"] = time.monotonic()
        function = namespace.get(request["funcname"])
        if not callable(function):
            result = {"status": "error", "reason": "missing_function",
                      "detail": f"{request['funcname']!r} is not defined by the program"}
        elif request.get("phase") == "dry_run":
            _dry_run(function, args, kwargs, request["depth"], limits, result_fd, marks)
        else:
            returned = TRACER(depth=request["depth"])(function)(*args, **kwargs)
            try:
                if "call" in request:
                    encoded = _literal_text(returned)
                else:
                    encoded = json.dumps(returned, default=_json_default, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                result = {"status": "error", "reason": "unserializable_return", "detail": str(exc)[:500]}
            else:
                result = {"status": "returned", "returned": encoded}
    except BaseException as exc:  # the program is untrusted: anything may escape it
        status, reason = _classify_exception(exc)
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
        _send(result_fd, result)
    except BaseException:
        os._exit(71)
    os._exit(0)


# snoop does not count comprehension frames as calls when it measures depth (generator
# expressions do count); the floor counts no line of either kind of frame (snoop prints a
# comprehension as a summary, and a floor may always leave lines out)
COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>"})
UNCOUNTED_FRAMES = COMPREHENSIONS | {"<genexpr>"}
RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
# a dry run gets this share of the time limit: past it, it is abandoned and the real run
# decides (a slow program with a short trace must not pay its run time twice)
DRY_RUN_SHARE = 0.1
# ...unless, a little before that, it is inside a comprehension of a frame that snoop traces:
# the dry run runs those at full speed, snoop pays every one of their steps, so the real run
# would cost many times more. The child then asks for the whole limit with this line.
MORE_TIME = b"+\n"
# when the child looks at its stack: at this share of its own share, in CPU time (SIGPROF:
# a program's own SIGALRM handler, or a sleep, must not see or trigger the check)
MORE_TIME_CHECK = 0.7
# A run's processes together may hold no more than its memory limit (RLIMIT_AS holds each
# one alone, RLIMIT_NPROC their number: 32 processes of 1 GiB would fill the host). The zygote
# adds up their memory every MEMORY_CHECK_S while the run lasts (most runs end before the
# first check); a run past the limit is stopped as "memory" (see _over_limits).
MEMORY_CHECK_S = 0.01
MAX_SCRATCH_FILES = 10_000  # files and folders in /tmp or /dev/shm, checked at the same times


def _dry_run(function, args: list, kwargs: dict, depth: int, limits: dict, result_fd: int,
             marks: dict) -> None:
    """The dry run, in this child (which it spoils for a real run); never returns. Sends
    status "trace_limit" (dry_run "over_budget") the moment snoop's trace surely passes the
    line budget, else status "fits" (whatever the call did: the real run, in a fresh child,
    decides).

    snoop prints at least one line per 'line' event of each frame it traces, so the line
    events of those frames are a lower bound on the trace's length. Counting them with a
    trivial trace function costs ~1 us an event against snoop's ~100 us, so a runaway program
    is stopped after a few milliseconds instead of after 300 formatted lines. Frames are
    chosen as snoop chooses them (target code, within ``depth`` calls, comprehensions
    skipped), never more, so the bound holds.
    """
    def over_budget(detail: str) -> None:
        sys.settrace(None)
        signal.setitimer(signal.ITIMER_PROF, 0)  # no MORE_TIME inside the message
        marks["dry_run"] = time.monotonic()
        _send(result_fd, {**_current_buffer.notes, "status": "trace_limit",
                          "dry_run": "over_budget", "detail": detail, "marks": marks})
        os._exit(0)

    budget = limits["max_trace_lines"]
    sys.stdout = sys.stderr = OutputSink(result_fd, limits["max_stdout_bytes"], on_overflow=(
        lambda: over_budget(f"a dry run printed more than {limits['max_stdout_bytes']} bytes")))
    floor = TraceFloor(function.__code__, depth, "".join(linecache.getlines(PROGRAM_FILENAME)),
                       budget, lambda: over_budget(f"a dry run passed {budget} traced lines"))

    def at_check(signum, frame) -> None:
        if _in_traced_comprehension(frame, floor.snapshots):
            try:
                os.write(result_fd, MORE_TIME)
            except OSError:  # the program closed it: the dry run keeps its share
                pass

    signal.signal(signal.SIGPROF, at_check)
    signal.setitimer(signal.ITIMER_PROF, limits["timeout_s"] * DRY_RUN_SHARE * MORE_TIME_CHECK)
    try:
        sys.settrace(floor.chooser)
        function(*args, **kwargs)
    except BaseException:
        pass
    finally:
        sys.settrace(None)
        signal.setitimer(signal.ITIMER_PROF, 0)
    marks["dry_run"] = time.monotonic()
    try:
        _send(result_fd, {**_current_buffer.notes, "status": "fits", "dry_run": "fits",
                          "marks": marks})
    finally:
        os._exit(0)


def _in_traced_comprehension(frame, traced_frames) -> bool:
    """Is ``frame``, or a frame below it, a comprehension of the program whose enclosing
    function the dry run counts (as snoop would trace it)?"""
    while frame is not None:
        code = frame.f_code
        if code.co_name in COMPREHENSIONS and code.co_filename == PROGRAM_FILENAME:
            owner = frame.f_back
            while owner is not None and owner.f_code.co_name in COMPREHENSIONS:
                owner = owner.f_back
            if owner in traced_frames:
                return True
        frame = frame.f_back
    return False


def _plain(value) -> bool:
    """Values whose repr, as snoop prints it, differs whenever the value does."""
    kind = type(value)
    return ((kind is int and -10**15 < value < 10**15) or kind is bool
            or (kind is float and value == value) or (kind is str and len(value) <= 30))


def _surely_new_repr(old, new) -> bool:
    if old is new or not (_plain(old) and _plain(new)):
        return False
    return type(old) is not type(new) or old != new


ASSIGNED_OR_DEFINED = re.compile(r"^[ \t]*(?:(\w+) = |(?:async[ \t]+)?def[ \t]+(\w+))", re.M)


class TraceFloor:
    """Counts lines that snoop surely prints for a call, with a trace function ~100x cheaper
    than snoop's: a lower bound of the trace's length, never more.

    Per event of a frame snoop would trace (comprehensions and generator expressions left
    out): a call prints ">>> Call to" and the ``def`` line, a line event its source line, a
    return its "<<< Return" line; an event in another frame than the last one also reprints
    that frame's line; a new local prints a line, and so does a local whose repr surely
    changed. snoop leaves a variable's line out when it reads exactly like the statement that
    just ran (``total = 0``) or names the function just defined, so names that some line
    assigns as ``name = ...`` or defines are never counted.
    """

    def __init__(self, target, depth: int, source: str, budget: int, on_budget):
        self.target, self.depth, self.budget, self.on_budget = target, depth, budget, on_budget
        self.count = 0
        self.last_frame = None
        self.snapshots: dict = {}
        self.unsure = frozenset(
            name for pair in ASSIGNED_OR_DEFINED.findall(source) for name in pair if name)

    def _variables(self, current: dict, previous: dict | None) -> int:
        unsure, lines = self.unsure, 0
        for name, value in current.items():
            if name in unsure:
                continue
            if previous is None or name not in previous or _surely_new_repr(previous[name], value):
                lines += 1
        return lines

    def local(self, frame, event, arg):
        if event == "call":
            current = frame.f_locals
            self.count += 2 + self._variables(current, None)
            self.snapshots[frame] = dict(current)
        else:  # line, return, exception ("!!! ..."): the line and a switch of frame
            self.count += 1 + (self.last_frame is not None and self.last_frame is not frame)
            if event == "line":
                current = frame.f_locals
                self.count += self._variables(current, self.snapshots.get(frame))
                self.snapshots[frame] = dict(current)
            elif event == "return":
                self.snapshots.pop(frame, None)
        self.last_frame = frame
        if self.count >= self.budget:
            self.on_budget()
        return self.local

    def chooser(self, frame, event, arg):
        code = frame.f_code
        if code.co_name in UNCOUNTED_FRAMES:
            return None
        caller = frame.f_back
        # a caller the floor does not count is no nearer the target than this frame (as in
        # fast_snoop's FastTracer.trace): no walk for recursion below the depth limit
        if (code is self.target or caller is None or caller in self.snapshots
                or caller.f_code.co_name in UNCOUNTED_FRAMES) and self._counted(frame):
            return self.local(frame, event, arg)
        if code.co_flags & RESUMABLE and frame.f_trace is not None:
            frame.f_trace = None  # a generator resumed from elsewhere (see fast_snoop)
        return None

    def _counted(self, frame) -> bool:
        candidate, steps = frame, 0
        while True:
            code = candidate.f_code
            if code.co_filename != PROGRAM_FILENAME:
                return False
            if code.co_name in COMPREHENSIONS:
                candidate = candidate.f_back
                if candidate is None:
                    return False
                continue
            steps += 1
            if code is self.target:
                return True
            candidate = candidate.f_back
            if steps >= self.depth or candidate is None:
                return False


_EXIT_SIGNALS = {
    signal.SIGXCPU: ("timeout", "cpu time limit"),
    signal.SIGXFSZ: ("sandbox", "file size limit"),
    signal.SIGKILL: ("crashed", "killed"),
}


def _status_from_wait(wait_status: int) -> tuple[str, str]:
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        status, what = _EXIT_SIGNALS.get(sig, ("crashed", "signal"))
        return status, f"{what} ({signal.Signals(sig).name})"
    return "crashed", f"exited with code {os.WEXITSTATUS(wait_status)} and no result"


class ScratchNotWiped(RuntimeError):
    """Something a run left in a writable place could not be removed: the jail must restart
    rather than let it reach the next run."""


def _wipe_scratch() -> None:
    for folder in WRITABLE:
        try:
            left = _empty_folder(folder) and os.listdir(folder)  # most runs write nothing
        except OSError as exc:
            raise ScratchNotWiped(f"{folder}: {exc}") from None
        if left:
            raise ScratchNotWiped(f"{folder}: {len(left)} entries left")


def _empty_folder(folder: str) -> int:
    """Remove everything under ``folder``, whatever a run did to it: a directory's mode is
    set back first (a run may chmod 0 its own directories), and each subdirectory is moved up
    to ``folder`` before it is emptied, so that neither recursion nor path length grows with
    the depth of the tree (a run may nest directories a hundred thousand deep). Returns how
    many entries it removed."""
    pending, moved, removed = [folder], 0, 0
    while pending:
        directory = pending.pop()
        if directory != folder:  # the folder itself is the jail's mount point, not a run's
            os.chmod(directory, 0o700)
        with os.scandir(directory) as entries:
            for entry in entries:
                removed += 1
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.path)
                elif directory == folder:
                    pending.append(entry.path)
                else:
                    os.chmod(entry.path, 0o700)  # moving a directory rewrites its '..'
                    while True:
                        target = f"{folder}/.wipe-{moved}"
                        moved += 1
                        if not os.path.lexists(target):
                            break
                    os.rename(entry.path, target)
                    pending.append(target)
        if directory != folder:
            os.rmdir(directory)
    return removed


def run_request(request: dict, limits: dict) -> tuple[dict, int, bool]:
    """One run: its dry run first (unless the request or the limits skip it) in a child of
    its own, then, unless that settled it, the traced run in a fresh child with the whole
    time limit. A dry run that ran out of its share of the limit, or that died, settles
    nothing: the traced run decides. One that asked for more time (MORE_TIME) and ran out of
    the whole limit settles it: the traced run does all the dry run does, and more.

    Returns (verdict, pid, reaped) of the last child; the caller answers first and cleans up
    after (``finish_run``), so reaping and scratch wiping overlap the actor's own work.
    """
    if not (limits.get("dry_run", True) and request.get("dry_run", True)):
        return run_one(request, limits)
    dry, pid, reaped = run_one({**request, "phase": "dry_run"}, limits,
                               limits["timeout_s"] * DRY_RUN_SHARE)
    if dry["status"] == "timeout" and dry.get("more_time"):
        dry["dry_run"] = "timeout"
        return dry, pid, reaped
    outcome = dry.get("dry_run") or ("abandoned" if dry["status"] == "timeout" else "fits")
    if outcome == "over_budget" or dry["status"] not in ("fits", "timeout", "crashed", "sandbox"):
        return dry, pid, reaped  # over budget, or failed before the call as the run would
    finish_run(pid, reaped, limits)  # nothing it left behind reaches the traced run
    if outcome == "fits":
        PROGRAMS.remember(request["code"], dry)
        PROGRAMS.prepare(request["code"])
    verdict, pid, reaped = run_one(request, limits)
    verdict["dry_run"] = outcome
    verdict["elapsed_s"] += dry["elapsed_s"]
    return verdict, pid, reaped


def run_one(request: dict, limits: dict, time_limit: float | None = None) -> tuple[dict, int, bool]:
    """Fork a child for one run (or dry run) and wait for its result within the wall-clock
    limit (``time_limit``, default the run's). Returns (verdict, pid, reaped)."""
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = _fork()
    if pid == 0:
        os.close(read_fd)
        try:
            _child(request, write_fd, limits)
        finally:
            os._exit(70)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    pidfd = os.pidfd_open(pid)
    limit = time_limit or limits["timeout_s"]
    chunks: list[bytes] = []
    received = 0
    wait_status = None
    verdict: dict | None = None
    more_time = False
    memory_check = started + MEMORY_CHECK_S
    try:
        while verdict is None and wait_status is None:
            now = time.monotonic()
            remaining = started + limit - now
            if remaining <= 0:
                verdict = {"status": "timeout", "detail": f"wall-clock limit of {limit} s"}
                break
            if now >= memory_check:
                verdict = _over_limits(limits)
                if verdict:
                    break
                memory_check = time.monotonic() + MEMORY_CHECK_S
            wait = min(remaining, memory_check - now)
            ready, _, _ = select.select([read_fd, pidfd], [], [], max(wait, 0))
            if read_fd in ready:
                received += _drain(read_fd, chunks)
                if request.get("phase") == "dry_run" and not more_time:
                    chunks = [b"".join(chunks)]
                    if chunks[0].startswith(MORE_TIME):
                        chunks[0] = chunks[0][len(MORE_TIME):]
                        more_time, limit = True, limits["timeout_s"]
                if chunks and b"\n" in chunks[-1]:
                    verdict = _parse_result(b"".join(chunks), None)
                elif received > limits["max_result_bytes"]:
                    verdict = {"status": "trace_limit", "detail": "result larger than its budget"}
            if verdict is None and pidfd in ready:
                _, wait_status = os.waitpid(pid, 0)
                _drain(read_fd, chunks)
                verdict = _parse_result(b"".join(chunks), wait_status)
    finally:
        os.close(read_fd)
        os.close(pidfd)
    elapsed = time.monotonic() - started
    verdict["elapsed_s"] = elapsed
    if more_time:
        verdict["more_time"] = True
    if "marks" in verdict:
        verdict["marks"] = {k: round((v - started) * 1000, 2) for k, v in verdict["marks"].items()}
        verdict["marks"]["end"] = round(elapsed * 1000, 2)
    return verdict, pid, wait_status is not None


def finish_run(pid: int, reaped: bool, limits: dict) -> None:
    """Kill whatever the run left behind (orphans included), reap it, wipe the scratch, and
    note the zygote's size for the next child's memory limit: all after the answer is sent,
    off the run's path."""
    _kill_everything_else(first_child=None if reaped else pid)
    _wipe_scratch()
    _note_own_size(limits)


def _note_own_size(limits: dict) -> None:
    """The zygote's size, which each fork starts with: its address space (the base of a run's
    RLIMIT_AS) and its anonymous memory (what a run's processes share with it at first)."""
    sizes = _status_kib("self", ("VmSize", "RssAnon"))
    limits["zygote_vm_bytes"] = 1024 * sizes["VmSize"]
    limits["zygote_anon_bytes"] = 1024 * sizes["RssAnon"]


def _drain(fd: int, chunks: list[bytes]) -> int:
    got = 0
    while True:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return got
        if not data:
            return got
        chunks.append(data)
        got += len(data)


def _parse_result(data: bytes, wait_status: int | None) -> dict:
    line = data.split(b"\n", 1)[0]
    if line:
        try:
            return _well_formed(json.loads(line))
        except (ValueError, RecursionError):
            return {"status": "crashed", "detail": "the run wrote a malformed result"}
    status, detail = _status_from_wait(wait_status)
    return {"status": status, "detail": detail}


# What a child may say, and the types it says them in. The child runs the program, which can
# write on the result pipe too: a message in another shape is the program's, and must not reach
# the code that reads verdicts (a missing or mistyped field there would stop the whole job).
RESULT_FIELDS = {
    "status": (str,), "returned": (str,), "reason": (str, type(None)), "detail": (str,),
    "module": (str, type(None)), "trace": (str,), "trace_lines": (int,), "run_s": (int, float),
    "marks": (dict,), "dry_run": (str,), "cached": (str,),
}
CHILD_STATUSES = frozenset({"returned", "error", "timeout", "memory", "trace_limit", "crashed",
                            "sandbox", "fits"})


def _well_formed(message) -> dict:
    """The child's message, with only the fields it may send, each of its type; else ValueError."""
    if not isinstance(message, dict) or not (
            type(message.get("status")) is str and message["status"] in CHILD_STATUSES):
        raise ValueError("not a result")
    checked = {}
    for name, value in message.items():
        kinds = RESULT_FIELDS.get(name)
        if kinds is None:
            continue
        if type(value) not in kinds:
            raise ValueError(f"{name} is {type(value).__name__}")
        checked[name] = value
    marks = checked.get("marks", {})
    if not all(type(value) in (int, float) for value in marks.values()):
        raise ValueError("marks")
    if not 0 <= checked.get("trace_lines", 0) < 1 << 31:  # an int32 column downstream
        raise ValueError("trace_lines")
    if checked.get("dry_run", "fits") not in ("fits", "over_budget"):
        raise ValueError("dry_run")
    if checked["status"] == "returned" and not {"returned", "trace", "trace_lines"} <= checked.keys():
        raise ValueError("a return without its value or trace")
    return checked


def _kill_everything_else(first_child: int | None) -> None:
    """Kill every other process in this PID namespace and reap them all: the zygote is the
    jail's PID 1, so orphans (setsid() ones too) come to it."""
    if os.getpid() != 1:  # kill(-1) outside the jail's own PID namespace would be a disaster
        raise RuntimeError("the zygote must run as PID 1 of a private PID namespace")
    for attempt in range(400):
        try:
            os.kill(-1, signal.SIGKILL)  # the dead stay listed (and signalable) until reaped
        except ProcessLookupError:
            return
        if first_child is not None:
            os.waitpid(first_child, 0)
            first_child = None
        elif attempt:
            time.sleep(0.0005)
        _reap_exited()


def _reap_exited() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


_libc_fork = None


def _fork() -> int:
    """fork(2) without Python's own work around it, which the zygote does not need: it has
    one Python thread, holds no lock when it forks, and the child keeps the very same thread
    (its identity, its thread state, the GIL it held). (The full jail also has a native
    thread, pyarrow's jemalloc background thread, which no fork copies; jemalloc's own
    pthread_atfork handlers look after it either way.) ``os.fork`` would run the at-fork
    callbacks of threading and random in every child: Python code whose first run after a
    fork copies some 170 pages of the zygote (a page fault each, ~3 us here), ~0.5 ms of a
    ~1.4 ms fork. The C libraries' own pthread_atfork handlers still run (libc's fork runs
    them). A side effect: a child's ``random`` starts from the zygote's state rather than a
    fresh seed, the same in every run (programs that use randomness are filtered out
    anyway). Plain ``os.fork`` where ctypes cannot reach libc's fork."""
    global _libc_fork
    if _libc_fork is None:
        try:
            import ctypes

            # PyDLL, not CDLL: the call keeps the GIL, which the child then holds as well
            libc_fork = ctypes.PyDLL(None, use_errno=True).fork
            libc_fork.restype, libc_fork.argtypes = ctypes.c_int, []
            _libc_fork = (libc_fork, ctypes.get_errno)
        except (OSError, AttributeError):
            _libc_fork = (os.fork, None)
    fork, get_errno = _libc_fork
    pid = fork()
    if pid < 0:
        raise OSError(get_errno(), "fork failed")
    return pid


def _undumpable() -> None:
    """Make the zygote (and so each run, a fork of it) non-dumpable: no run may open
    /proc/1/mem or attach to the zygote, which outlives it (seccomp refuses ptrace too, but
    not opening a /proc file)."""
    import ctypes

    PR_SET_DUMPABLE = 4
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _preload(modules: list[str]) -> tuple[dict, dict]:
    loaded, missing = {}, {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except BaseException as exc:  # a broken optional library must not stop the jail
            missing[name] = f"{type(exc).__name__}: {exc}"[:200]
        else:
            loaded[name] = getattr(module, "__version__", None)
    return loaded, missing


def _zero_filled_empty() -> None:
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


def _load_lazy_parts() -> None:
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


def _warm_up() -> str:
    """Trace one small program in the zygote before it freezes, so that each child starts
    with snoop's and cheap_repr's code paths already run (Python 3.11 specialises bytecode
    on first use, writing into code objects that every child would otherwise copy and
    specialise again). Its traces, source and tracer state are then dropped: the output
    of a run never depends on it (``tests/test_fast_snoop.py`` holds a warm jail to a cold one).
    Returns how it went: "done", or why it failed (a saving only: the jail works without)."""
    global _current_buffer
    _set_program_lines(WARM_UP_PROGRAM, WARM_UP_FILENAME)
    namespace = {"__name__": "warm_up", "__file__": WARM_UP_FILENAME}
    saved, outcome = _current_buffer, "done"
    try:
        exec(compile(WARM_UP_PROGRAM, WARM_UP_FILENAME, "exec"), namespace)
        for depth in (1, 2):
            _current_buffer = TraceBuffer(-1, 10**6, 10**9)
            TRACER(depth=depth)(namespace["main_solution"])(n=14, word="warm up")
            if "<<< Return value from main_solution" not in _current_buffer.text():
                outcome = "failed: the warm-up's trace did not return"
    except Exception as exc:
        outcome = f"failed: {type(exc).__name__}: {exc}"[:200]
    finally:
        _current_buffer = saved
        linecache.cache.pop(WARM_UP_FILENAME, None)
        cache = _source_cache()
        if cache is not None:
            cache.clear()
        config = getattr(TRACER, "config", None)
        if config is not None:
            config.last_frame = None
    return outcome


def _untraced_directories() -> tuple[str, ...]:
    """Library code is never traced: only frames from the program itself are."""
    paths = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(p for p in sys.path if p and os.path.isdir(p))
    return tuple(sorted(paths))


def main() -> None:
    sys.set_int_max_str_digits(INT_DIGITS)
    limits = json.loads(sys.argv[1])
    preload = json.loads(sys.argv[2])
    _undumpable()
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
    loaded, missing = _preload(["snoop", *preload])
    _zero_filled_empty()
    _load_lazy_parts()
    snoop.tracer.internal_directories = _untraced_directories()
    global TRACER
    TRACER = _snoop_tracer(limits.get("fast_tracer", True))
    warm_up = _warm_up() if limits.get("warm_up", True) else "off"
    gc.collect()
    gc.freeze()  # keep forked children from touching (copying) every preloaded object
    _note_own_size(limits)
    _send(protocol_out, {"ready": True, "pid": os.getpid(), "uid": os.getuid(),
                         "python": sys.version.split()[0], "preloaded": loaded, "missing": missing,
                         "warm_up": warm_up})
    for raw in protocol_in:
        request = json.loads(raw)
        pid, reaped = None, True
        try:
            PROGRAMS.prepare(request["code"])
            result, pid, reaped = run_request(request, limits)
        except ScratchNotWiped as exc:  # between the dry run and the run
            _send(protocol_out, {"status": "crashed", "detail": f"zygote: {exc}"})
            sys.exit(RESTART_EXIT_CODE)
        except Exception as exc:  # keep the jail alive; the run is reported as crashed
            result = {"status": "crashed", "detail": f"zygote: {type(exc).__name__}: {exc}"[:500]}
        _send(protocol_out, result)
        PROGRAMS.remember(request.get("code"), result)
        if pid is not None:
            try:
                finish_run(pid, reaped, limits)
            except ScratchNotWiped:
                sys.exit(RESTART_EXIT_CODE)  # the sandbox starts a fresh jail for the next run


if __name__ == "__main__":
    main()
