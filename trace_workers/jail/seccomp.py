"""The jail's seccomp filter: system calls a traced program never needs, refused with EPERM.

bubblewrap loads it (``--seccomp FD``) into the zygote, and every run inherits it. The jail
already holds what a run can reach (namespaces, rlimits, a read-only filesystem); these calls
reach around those limits:

- ``ptrace``, ``process_vm_readv``/``writev``: another process's memory (the zygote outlives
  every run: a run that could write into it would poison the runs after it);
- System V IPC (``shmget`` and the rest): its objects outlive the process that made them, and
  a segment's memory counts against no rlimit once detached (a run could fill the host's
  memory, and leave it filled);
- ``memfd_create``, ``memfd_secret``: memory that no mount bounds, which a process can hold
  without mapping it (the zygote's check of a run's memory counts what its processes map);
- ``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``, the kernel keyring: kernel
  attack surface that no program of the corpus touches;
- any call through another ABI than the native one (32-bit ``int 0x80``, x32), which would
  bypass a filter written in native numbers.

The filter is a classic BPF program, as ``seccomp_export_bpf`` writes it, for x86_64 and
aarch64 (the ARM nodes that are the cheapest spot capacity); on another architecture there is
none, and the trace stage refuses to run there unless ``--allow-unfiltered-arch`` is given
(``Sandbox.info["seccomp"]`` then is empty, and the manifest says which filter ran).
"""

from __future__ import annotations

import errno
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000
# x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl)
REFUSED_X86_64 = {
    "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66,
    "shmdt": 67, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "ptrace": 101,
    "semtimedop": 220, "add_key": 248, "request_key": 249, "keyctl": 250,
    "perf_event_open": 298, "process_vm_readv": 310, "process_vm_writev": 311,
    "memfd_create": 319, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "memfd_secret": 447,
}
# aarch64 numbers: the generic table (include/uapi/asm-generic/unistd.h)
REFUSED_AARCH64 = {
    "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189, "semget": 190, "semctl": 191,
    "semtimedop": 192, "semop": 193, "shmget": 194, "shmctl": 195, "shmat": 196, "shmdt": 197,
    "ptrace": 117, "add_key": 217, "request_key": 218, "keyctl": 219, "perf_event_open": 241,
    "process_vm_readv": 270, "process_vm_writev": 271, "memfd_create": 279, "bpf": 280,
    "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "memfd_secret": 447,
}
# machine -> (the audit arch the filter admits, its refused calls); any other ABI is refused
FILTERS = {"x86_64": (AUDIT_ARCH_X86_64, REFUSED_X86_64),
           "aarch64": (AUDIT_ARCH_AARCH64, REFUSED_AARCH64)}

# classic BPF opcodes and seccomp's return values (linux/filter.h, linux/seccomp.h)
LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: load a 32-bit word of seccomp_data
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
NR_OFFSET, ARCH_OFFSET = 0, 4  # struct seccomp_data {int nr; u32 arch; ...}


def _instruction(code: int, k: int, jump_true: int = 0, jump_false: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jump_true, jump_false, k)


def refused_calls(machine: str | None = None) -> dict[str, int]:
    """The calls the filter refuses on this machine (empty where it has no filter)."""
    found = FILTERS.get(machine or platform.machine())
    return dict(found[1]) if found else {}


def filter_name(machine: str | None = None) -> str | None:
    """Which filter runs on this machine ("x86_64", "aarch64"), or None."""
    machine = machine or platform.machine()
    return machine if machine in FILTERS else None


def filter_program(machine: str | None = None) -> bytes | None:
    """The compiled filter for this machine (or ``machine``), or None where there is none."""
    machine = machine or platform.machine()
    if machine not in FILTERS:
        return None
    arch, calls = FILTERS[machine]
    refused = sorted(set(calls.values()))
    # (code, k, where to go when true, when false); "next" falls through
    steps = [
        (LD_W_ABS, ARCH_OFFSET, None, None),
        (JEQ_K, arch, "next", "deny"),
        (LD_W_ABS, NR_OFFSET, None, None),
        (JGE_K, X32_SYSCALL_BIT, "deny", "next"),
        (JGE_K, refused[0], "next", "allow"),  # the hot calls (read, write, mmap...) leave here
        *((JEQ_K, number, "deny", "next") for number in refused),
    ]
    returns = {"allow": len(steps), "deny": len(steps) + 1}  # where the two returns sit
    program = []
    for index, (code, k, when_true, when_false) in enumerate(steps):
        # a jump's offset counts the instructions it skips
        true_jump, false_jump = (returns[t] - index - 1 if t in returns else 0
                                 for t in (when_true, when_false))
        program.append(_instruction(code, k, true_jump, false_jump))
    program += [_instruction(RET_K, RET_ALLOW), _instruction(RET_K, RET_ERRNO | errno.EPERM)]
    return b"".join(program)
