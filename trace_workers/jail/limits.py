"""A run's limits (runs inside the jail): the rlimits a child sets on itself, and the
zygote's checks of the memory all the run's processes hold and of the files its scratch has.
"""

from __future__ import annotations

import math
import os
import resource

SCRATCH = "/tmp"
WRITABLE = (SCRATCH, "/dev/shm")  # the jail's only writable places, wiped after every run
# a run closes every fd up to this but its result pipe (os.closerange: one close_range call)
MAX_FD = min(max(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1 << 16), 1 << 30)


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


def over_limits(limits: dict) -> dict | None:
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


def set_limits(limits: dict) -> None:
    # the zygote's size, read after its previous run (a child starts as big as the zygote)
    address_space = limits["zygote_vm_bytes"]  # (note_own_size)
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
# A run's processes together may hold no more than its memory limit (RLIMIT_AS holds each
# one alone, RLIMIT_NPROC their number: 32 processes of 1 GiB would fill the host). The zygote
# adds up their memory every MEMORY_CHECK_S while the run lasts (most runs end before the
# first check); a run past the limit is stopped as "memory" (see over_limits).
MEMORY_CHECK_S = 0.01
MAX_SCRATCH_FILES = 10_000  # files and folders in /tmp or /dev/shm, checked at the same times


def note_own_size(limits: dict) -> None:
    """The zygote's size, which each fork starts with: its address space (the base of a run's
    RLIMIT_AS) and its anonymous memory (what a run's processes share with it at first)."""
    sizes = _status_kib("self", ("VmSize", "RssAnon"))
    limits["zygote_vm_bytes"] = 1024 * sizes["VmSize"]
    limits["zygote_anon_bytes"] = 1024 * sizes["RssAnon"]
