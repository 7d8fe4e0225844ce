"""The tracer inside the jail and the program cache (runs inside the jail).

snoop's tracer (fast_snoop's by default) configured once in the zygote, writing into the
current run's :class:`TraceBuffer`; the program's own lines under a fixed file name, so that
trace line numbers are the program's; and the cache of compiled programs that ran safely.
``TRACER`` and ``current_buffer`` are this module's state: other modules read them as
``tracing.TRACER``.
"""

from __future__ import annotations

import linecache
import os
import pprint

from trace_workers.jail.protocol import ADDRESS, PROGRAM_FILENAME, send


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
            send(self.result_fd, {
                **self.notes,
                "status": "trace_limit",
                "detail": f"trace passed its budget ({self.lines} lines, {self.size} chars)",
                "trace_lines": self.lines,
            })
            os._exit(0)

    def text(self) -> str:
        return ADDRESS.sub("", "".join(self.parts))


current_buffer: TraceBuffer | None = None
TRACER = None  # the tracer class: fast_snoop's (default) or snoop's own
ELIDING_TRACER = None  # fast_snoop's with spans (trace_workers.jail.elision); None for snoop's


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
                set_program_lines(text)
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
        cache = source_cache()
        if cache is not None:
            cache.clear()


def _snoop_source():
    import snoop.tracer

    return snoop.tracer.Source


def source_cache() -> dict | None:
    """executing's cache of parsed sources, for snoop's Source class (None if its private
    layout ever changes: runs then parse in the child, as before)."""
    class_local = getattr(_snoop_source(), "_class_local", None)
    if class_local is None:
        return None
    cache = class_local("__source_cache_with_lines", {})
    return cache if isinstance(cache, dict) else None


def set_program_lines(text: str, filename: str = PROGRAM_FILENAME) -> None:
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)


PROGRAMS = ProgramCache()


def _write_trace(text: str) -> None:
    current_buffer.write(text)


def snoop_tracer(fast: bool = True):
    """The tracer class, configured once in the zygote; each child points ``current_buffer``
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


def eliding_tracer(tracer):
    """The eliding tracer class on ``tracer``'s configuration; None when ``tracer`` is snoop's
    own (elision is built on fast_snoop's)."""
    fast_snoop = _fast_snoop()
    if not issubclass(tracer, fast_snoop.FastTracer):
        return None
    from trace_workers.jail import elision

    return type("snoop", (elision.ElidingTracer,), {"config": tracer.config})


def _fast_snoop():
    from trace_workers.jail import fast_snoop

    return fast_snoop
