"""The jail's wire protocol and the values that cross it (runs inside the jail, beside
``zygote.py``; standard library only).

JSON lines between ``trace_workers.jail.sandbox.Sandbox`` and the zygote, and the one JSON result a
run's child writes to its private pipe: how values are encoded (JSON, or a Python literal for
the call format), how a call's arguments are read, how an exception is classified, and how
the zygote reads a child's result back (and what a child that died says).
"""

from __future__ import annotations

import ast
import errno
import json
import os
import re
import signal

PROGRAM_FILENAME = "/program/main.py"
RESTART_EXIT_CODE = 75  # the zygote's exit when it cannot wipe them: "start a fresh jail"
ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
# Python 3.11 refuses int <-> str conversions past 4,300 digits (a guard against quadratic work
# on untrusted text), but a PyEdu value may pass that (2000! has 5,736 digits), and a value that
# the tracer cannot print or the job cannot read back is lost: the jail and every process of the
# job allow up to INT_DIGITS digits (~0.1 s a conversion) instead.
INT_DIGITS = 100_000
# errnos that mean "the jail said no" rather than "the program is wrong".
BLOCKED_ERRNOS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENETUNREACH, errno.ENETDOWN,
    errno.EHOSTUNREACH, errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.ENOSPC,
    errno.EAGAIN, errno.EMFILE, errno.ENFILE, errno.EFBIG, errno.EDQUOT,
}


def send(fd: int, message: dict) -> None:
    data = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


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
            send(self.result_fd, {
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


def json_default(value):
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


def parse_call(text: str, namespace: dict | None = None) -> tuple[list, dict]:
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


def literal_text(value) -> str:
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


def classify_exception(exc: BaseException) -> tuple[str, str | None]:
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


def drain(fd: int, chunks: list[bytes]) -> int:
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


def parse_result(data: bytes, wait_status: int | None) -> dict:
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
    "marks": (dict,), "dry_run": (str,), "cached": (str,), "elided": (dict,),
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
    if not all(type(value) is int for value in checked.get("elided", {}).values()):
        raise ValueError("elided")
    if not 0 <= checked.get("trace_lines", 0) < 1 << 31:  # an int32 column downstream
        raise ValueError("trace_lines")
    if checked.get("dry_run", "fits") not in ("fits", "over_budget"):
        raise ValueError("dry_run")
    if checked["status"] == "returned" and not {"returned", "trace", "trace_lines"} <= checked.keys():
        raise ValueError("a return without its value or trace")
    return checked
