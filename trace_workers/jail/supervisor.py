"""The zygote's supervision of a run (runs inside the jail): fork the child, wait for its
result within the wall-clock limit while watching its memory, then kill every other process
in the jail's PID namespace (orphans that called setsid() too), reap them and wipe the scratch.
"""

from __future__ import annotations

import os
import select
import signal
import time

from trace_workers.jail import tracing
from trace_workers.jail.child import run_child
from trace_workers.jail.dry_run import DRY_RUN_SHARE, MORE_TIME
from trace_workers.jail.limits import MEMORY_CHECK_S, WRITABLE, note_own_size, over_limits
from trace_workers.jail.protocol import drain, parse_result
from trace_workers.jail.tracing import PROGRAMS

# a run traced with elision gets this share of the time limit: such a run is 2-4x slower than
# the program (a trace function on every line of a long loop); one that needs more is nearly
# always far over (dev set: 16 of 256 elided runs ran out of the whole limit, 5 s each)
ELISION_SHARE = 0.5


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
    the whole limit settles it: the traced run does all the dry run does, and more. A run
    over the run budget (by its dry run or its trace) is traced once more with its long
    loops and deep recursion elided (``limits["elide"]``, trace_workers.jail.elision).

    Returns (verdict, pid, reaped) of the last child; the caller answers first and cleans up
    after (``finish_run``), so reaping and scratch wiping overlap the actor's own work.
    """
    if request.get("phase") == "elided":  # the caller knows the run is over the budget
        return _elided_if_over(request, limits, {
            "status": "trace_limit", "detail": "over the run budget", "elapsed_s": 0.0}, None, True)
    if not (limits.get("dry_run", True) and request.get("dry_run", True)):
        return _elided_if_over(request, limits, *run_one(request, limits))
    dry, pid, reaped = run_one({**request, "phase": "dry_run"}, limits,
                               limits["timeout_s"] * DRY_RUN_SHARE)
    if dry["status"] == "timeout" and dry.get("more_time"):
        dry["dry_run"] = "timeout"
        return dry, pid, reaped
    outcome = dry.get("dry_run") or ("abandoned" if dry["status"] == "timeout" else "fits")
    if outcome == "over_budget":
        return _elided_if_over(request, limits, dry, pid, reaped)
    if dry["status"] not in ("fits", "timeout", "crashed", "sandbox"):
        return dry, pid, reaped  # failed before the call as the run would
    finish_run(pid, reaped, limits)  # nothing it left behind reaches the traced run
    if outcome == "fits":
        PROGRAMS.remember(request["code"], dry)
        PROGRAMS.prepare(request["code"])
    verdict, pid, reaped = _elided_if_over(request, limits, *run_one(request, limits))
    verdict["dry_run"] = outcome
    verdict["elapsed_s"] += dry["elapsed_s"]
    return verdict, pid, reaped


def _elided_if_over(request: dict, limits: dict, verdict: dict, pid: int | None,
                    reaped: bool) -> tuple[dict, int, bool]:
    """``verdict``, or where it is over the run budget and elision is on, the verdict of a
    run traced with spans (in a fresh child, within ELISION_SHARE of the time limit). One
    that runs out of time is a timeout whose detail says it was over the budget first;
    ``elision`` is that run's status."""
    if verdict["status"] != "trace_limit" or not (limits.get("elide", True)
                                                  and request.get("elide", True)) \
            or tracing.ELIDING_TRACER is None:
        return verdict, pid, reaped
    if pid is not None:
        finish_run(pid, reaped, limits)
    time_limit = limits["timeout_s"] * ELISION_SHARE
    elided, pid, reaped = run_one({**request, "phase": "elided"}, limits, time_limit)
    elided["elision"] = elided["status"]
    if elided["status"] == "timeout":  # what stops it now is its time, not its length
        elided["detail"] = (f"{verdict.get('detail', '')}; traced with its long loops and deep "
                            f"calls elided, it passed {time_limit:g} s")
    elided["elapsed_s"] += verdict["elapsed_s"]
    if "dry_run" in verdict:
        elided["dry_run"] = verdict["dry_run"]
    return elided, pid, reaped


def run_one(request: dict, limits: dict, time_limit: float | None = None) -> tuple[dict, int, bool]:
    """Fork a child for one run (or dry run) and wait for its result within the wall-clock
    limit (``time_limit``, default the run's). Returns (verdict, pid, reaped)."""
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = _fork()
    if pid == 0:
        os.close(read_fd)
        try:
            run_child(request, write_fd, limits)
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
                verdict = over_limits(limits)
                if verdict:
                    break
                memory_check = time.monotonic() + MEMORY_CHECK_S
            wait = min(remaining, memory_check - now)
            ready, _, _ = select.select([read_fd, pidfd], [], [], max(wait, 0))
            if read_fd in ready:
                received += drain(read_fd, chunks)
                if request.get("phase") == "dry_run" and not more_time:
                    chunks = [b"".join(chunks)]
                    if chunks[0].startswith(MORE_TIME):
                        chunks[0] = chunks[0][len(MORE_TIME):]
                        more_time, limit = True, limits["timeout_s"]
                if chunks and b"\n" in chunks[-1]:
                    verdict = parse_result(b"".join(chunks), None)
                elif received > limits["max_result_bytes"]:
                    verdict = {"status": "trace_limit", "detail": "result larger than its budget"}
            if verdict is None and pidfd in ready:
                _, wait_status = os.waitpid(pid, 0)
                drain(read_fd, chunks)
                verdict = parse_result(b"".join(chunks), wait_status)
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
    note_own_size(limits)


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


def undumpable() -> None:
    """Make the zygote (and so each run, a fork of it) non-dumpable: no run may open
    /proc/1/mem or attach to the zygote, which outlives it (seccomp refuses ptrace too, but
    not opening a /proc file)."""
    import ctypes

    PR_SET_DUMPABLE = 4
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
