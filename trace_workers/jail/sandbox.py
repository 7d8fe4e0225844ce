"""A bubblewrap jail with a pre-forked zygote: the only place untrusted programs run.

The jail has its own user, PID, network, IPC and UTS namespaces, a read-only view of the
system and of the Python environment (nothing else: no home folders, no project checkout,
no Ray session folder), an empty environment, and a small private tmpfs as scratch. When
started as root, the jail runs as an unprivileged uid of its own (one per worker slot, held
by a file lock), so that RLIMIT_NPROC holds a fork bomb. See ``zygote.py`` for the per-run
limits.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from trace_workers.jail import seccomp
from trace_workers.jail.protocol import RESTART_EXIT_CODE

# the files the jail runs: the zygote and the tracer it imports, copied out of the checkout
# what the jail holds in JAIL_FOLDER (copied there as a set; nothing else of the project)
JAIL_FILES = ("zygote.py", "protocol.py", "limits.py", "tracing.py", "dry_run.py", "child.py",
              "supervisor.py", "preload.py", "fast_snoop.py", "elision.py")
# the jail sees them as the package trace_workers.jail (an empty __init__.py in it and in
# trace_workers) under JAIL_FOLDER, its one PYTHONPATH entry
JAIL_FOLDER = "/opt/groundtrace"
JAIL_PACKAGE = f"{JAIL_FOLDER}/trace_workers/jail"
JAIL_INITS = (f"{JAIL_FOLDER}/trace_workers/__init__.py", f"{JAIL_PACKAGE}/__init__.py")
JAIL_ZYGOTE = f"{JAIL_PACKAGE}/zygote.py"
DEFAULT_PRELOAD = ("numpy", "sympy", "networkx", "scipy", "scipy.optimize", "pandas", "z3")
SLOT_DIR = Path(tempfile.gettempdir()) / "groundtrace-sandbox-slots"


PER_SLOT_UID = "an unprivileged uid per worker slot"
CURRENT_USER = "the current user (not root, so no uid of its own)"


class SandboxError(RuntimeError):
    """The jail could not be started or stopped answering."""


@dataclass
class SandboxLimits:
    """Per-run limits. The run budget (max_run_lines, max_trace_bytes) stops runaway programs
    early; it is far above what is told of a run (the story budget, the trace stage's
    ``max_trace_lines``): a long run is kept and told folded (translate.digest)."""

    timeout_s: float = 5.0
    memory_mb: int = 1024
    max_procs: int = 32
    max_file_mb: int = 16
    max_open_files: int = 64
    scratch_mb: int = 64
    max_run_lines: int = 10_000
    max_trace_bytes: int = 1_048_576
    max_stdout_bytes: int = 1_048_576
    dry_run: bool = True  # count lines cheaply first; stop runaways before snoop formats them
    fast_tracer: bool = True  # fast_snoop's tracer (the same trace); False: snoop's own
    # a run the dry run finds over the run budget is traced again with the rest of its long
    # loops and deep recursion left untraced (trace_workers.jail.elision); needs fast_tracer
    elide: bool = True
    warm_up: bool = True  # the zygote traces a small program of its own before its first fork
    # run on an architecture that has no seccomp filter (trace_workers.jail.seccomp), without one
    allow_unfiltered_arch: bool = False

    def for_zygote(self) -> dict:
        return {
            "timeout_s": self.timeout_s,
            "memory_bytes": self.memory_mb << 20,
            "max_procs": self.max_procs,
            "max_file_bytes": self.max_file_mb << 20,
            "max_open_files": self.max_open_files,
            "max_trace_lines": self.max_run_lines,
            "max_trace_bytes": self.max_trace_bytes,
            "max_stdout_bytes": self.max_stdout_bytes,
            "dry_run": self.dry_run,
            "fast_tracer": self.fast_tracer,
            "elide": self.elide,
            "warm_up": self.warm_up,
            "max_result_bytes": 4 * self.max_trace_bytes + (1 << 20),
        }


@dataclass
class SandboxSettings:
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    preload: tuple[str, ...] = DEFAULT_PRELOAD
    # First uid of the per-slot range used when running as root; slots are base..base+slots-1.
    uid_base: int = 61000
    uid_slots: int = 512
    start_timeout_s: float = 120.0


def unfiltered_arch_message() -> str:
    import platform

    return (f"this {platform.machine()} machine has no seccomp filter for the jail (x86_64 and "
            "aarch64 have one): refusing to run programs without it; pass "
            "--allow-unfiltered-arch to run them all the same")


def check_arch(allowed: bool) -> None:
    """Refuse, before anything starts, to trace where the jail would have no seccomp filter."""
    if not allowed and seccomp.filter_program() is None:
        raise SandboxError(unfiltered_arch_message())


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if not path:
        raise SandboxError(
            "bubblewrap (bwrap) is not installed; install the Debian package 'bubblewrap' "
            "(make install-system does it)"
        )
    return path


def _readable_by_others(path: Path) -> bool:
    """True when an unprivileged uid can reach and read ``path`` (every parent traversable)."""
    path = path.resolve()
    for parent in [*reversed(path.parents), path]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            return False
        needed = stat.S_IXOTH if stat.S_ISDIR(mode) else stat.S_IROTH
        if not mode & needed:
            return False
    return True


def python_roots() -> list[Path]:
    """Folders the jail must see read-only for this interpreter and its packages to work."""
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent}
    return sorted(r for r in roots if not str(r).startswith("/usr"))


# the jail's own writable places: an environment under one of them would be hidden by the
# scratch mounted there, so the jail sees it under JAIL_ENVS instead
SCRATCH_MOUNTS = ("/tmp", "/dev/shm")
JAIL_ENVS = "/groundtrace-env"


def jail_python_roots() -> dict[Path, Path]:
    """Each Python root, and where the jail sees it: where it is, unless the jail's scratch
    would hide it there (a project cloned under /tmp, its venv with it)."""
    mapped = {}
    for number, root in enumerate(python_roots()):
        hidden = any(str(root) == top or str(root).startswith(top + "/") for top in SCRATCH_MOUNTS)
        mapped[root] = Path(JAIL_ENVS) / str(number) if hidden else root
    return mapped


def jail_executable(roots: dict[Path, Path]) -> str:
    """This interpreter's path inside the jail (under its root's jail path, if it moved)."""
    executable = Path(sys.executable)
    for root, inside in roots.items():
        if executable.is_relative_to(root):
            return str(inside / executable.relative_to(root))
    return str(executable)


class UidSlot:
    """An unprivileged uid held for the life of one sandbox, by an flock on a slot file."""

    def __init__(self, base: int, count: int):
        SLOT_DIR.mkdir(mode=0o700, exist_ok=True)
        for uid in range(base, base + count):
            fd = os.open(SLOT_DIR / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise SandboxError(f"all {count} sandbox uid slots from {base} are in use")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Sandbox:
    """One jail and its zygote. ``run`` executes one program call; the jail is restarted
    whenever it dies (a program may kill its parent)."""

    def __init__(self, settings: SandboxSettings | None = None):
        self.settings = settings or SandboxSettings()
        self._proc: subprocess.Popen | None = None
        self._slot: UidSlot | None = None
        self._workdir: Path | None = None
        self._buffer = b""
        self.info: dict = {}
        self.restarts = 0
        # seconds the first start took (the jail's fixed cost, apart from any program's)
        self.first_start_s: float | None = None

    # -- life cycle -------------------------------------------------------------------------

    def _identity(self) -> tuple[int | None, str]:
        if os.geteuid() != 0:
            return None, CURRENT_USER
        unreadable = [str(p) for p in python_roots() if not _readable_by_others(p / "bin")]
        if unreadable:
            raise SandboxError(
                "the sandbox runs programs as an unprivileged uid, which cannot read the Python "
                f"environment at {', '.join(unreadable)}; use a virtualenv made from a system "
                "interpreter in a world-readable folder (the Makefile does this)"
            )
        if self._slot is None:
            self._slot = UidSlot(self.settings.uid_base, self.settings.uid_slots)
        return self._slot.uid, PER_SLOT_UID

    def _command(self, seccomp_fd: int | None) -> list[str]:
        assert self._workdir is not None
        scratch = self.settings.limits.scratch_mb << 20
        roots = jail_python_roots()
        argv = [
            bwrap_path(), "--unshare-all", "--unshare-user", "--disable-userns",
            # the zygote is the jail's PID 1: no bwrap init beside it for a run to write into,
            # and a run's signals cannot reach it (PID 1 gets only those it handles)
            "--as-pid-1", "--die-with-parent", "--new-session", "--clearenv",
            "--hostname", "sandbox", "--ro-bind", "/usr", "/usr",
        ]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                argv += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                argv += ["--ro-bind", top, top]
        for name in ("ld.so.cache", "ld.so.conf", "localtime", "nsswitch.conf"):
            argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for root, inside in roots.items():
            argv += ["--ro-bind", str(root.resolve()), str(inside)]
        for inside in JAIL_INITS:
            argv += ["--ro-bind", str(self._workdir / "__init__.py"), inside]
        for name in JAIL_FILES:
            argv += ["--ro-bind", str(self._workdir / name), f"{JAIL_PACKAGE}/{name}"]
        argv += [
            "--proc", "/proc", "--dev", "/dev",
            # the only writable places: the scratch and /dev/shm, each a bounded tmpfs that
            # the zygote wipes after every run
            "--size", str(scratch), "--tmpfs", "/tmp", "--size", str(scratch), "--tmpfs", "/dev/shm",
            "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp",
        ]
        if seccomp_fd is not None:
            argv += ["--seccomp", str(seccomp_fd)]
        env = {
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8",
            "PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "PYTHONPATH": JAIL_FOLDER,
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "NUMEXPR_NUM_THREADS": "1", "MPLBACKEND": "Agg",
        }
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += [
            jail_executable(roots), "-s", "-B", JAIL_ZYGOTE,
            json.dumps(self.settings.limits.for_zygote()), json.dumps(list(self.settings.preload)),
        ]
        return argv

    def start(self) -> dict:
        began = time.monotonic()
        uid, identity = self._identity()
        if self._workdir is None:
            # The zygote is copied out of the checkout so that the jail never needs to see it.
            self._workdir = Path(tempfile.mkdtemp(prefix="groundtrace-jail-"))
            self._workdir.chmod(0o755)
            for name in JAIL_FILES:
                shutil.copyfile(Path(__file__).with_name(name), self._workdir / name)
            (self._workdir / "__init__.py").write_text("")  # not the host's: nothing imported
            for name in ("__init__.py", *JAIL_FILES):
                (self._workdir / name).chmod(0o644)
        log = open(self._workdir / "jail.log", "w+b")
        program = seccomp.filter_program()
        if program is None and not self.settings.limits.allow_unfiltered_arch:
            raise SandboxError(unfiltered_arch_message())
        seccomp_fd = None
        if program is not None:  # bwrap reads the filter from this fd as it sets the jail up
            (self._workdir / "seccomp.bpf").write_bytes(program)
            seccomp_fd = os.open(self._workdir / "seccomp.bpf", os.O_RDONLY)
        try:
            self._proc = subprocess.Popen(
                self._command(seccomp_fd), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=log, user=uid, group=uid, extra_groups=[] if uid is not None else None,
                close_fds=True, pass_fds=() if seccomp_fd is None else (seccomp_fd,), cwd="/",
                # nothing of the worker's environment (credentials, Ray address) goes in
                env={"PATH": "/usr/bin:/bin"},
            )
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        self._log = log
        self._buffer = b""
        try:
            ready = self._read_message(self.settings.start_timeout_s)
        except SandboxError as exc:
            log.seek(0)
            said = log.read()[-2000:].decode(errors="replace").strip()
            self.stop()
            raise SandboxError(f"the sandbox did not start: {exc}; bwrap said: {said}") from None
        self.info = {**ready, "identity": identity, "seccomp": sorted(seccomp.refused_calls()),
                     "seccomp_filter": seccomp.filter_name() or "none"}
        if self.first_start_s is None:
            self.first_start_s = time.monotonic() - began
        return self.info

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for pipe in (self._proc.stdin, self._proc.stdout):
                if pipe:
                    pipe.close()
            self._proc = None
            self._log.close()

    def close(self) -> None:
        self.stop()
        if self._slot is not None:
            self._slot.release()
            self._slot = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------------

    def run(self, code: str, funcname: str, kwargs_json: str, depth: int,
            call_format: bool = False, dry_run: bool = True, elide: bool = True,
            elided: bool = False) -> dict:
        """Run ``funcname(**json.loads(kwargs_json))`` from ``code`` under snoop; with
        ``call_format``, ``kwargs_json`` is a Python-literal argument list (``"1, k=(2, 3)"``),
        parsed inside the jail by ``ast.literal_eval``. ``dry_run=False`` skips the dry run
        (a saving when the program's traces are known to be short; the budget still holds).
        ``elide=False`` leaves a run over the run budget a ``trace_limit`` (no run with
        elision, ``SandboxLimits.elide``, after it); ``elided=True`` traces with elision
        straight away (the caller knows the run is over the budget).

        Returns the zygote's verdict: ``status`` plus ``trace``, ``returned`` (JSON text; with
        ``call_format`` the value's repr), ``detail`` and timings where they apply. Never
        raises for anything the program does.
        """
        if self._proc is None:
            self.start()
        request = {"code": code, "funcname": funcname, "depth": depth,
                   ("call" if call_format else "kwargs"): kwargs_json}
        if not dry_run:
            request["dry_run"] = False
        if not elide:
            request["elide"] = False
        if elided:
            request["phase"] = "elided"
        try:
            self._proc.stdin.write(json.dumps(request).encode("utf-8", "surrogatepass") + b"\n")
            self._proc.stdin.flush()
            # The zygote enforces the run's own limits (a dry run's share, the run, a run with
            # elision after it); this one only catches a dead jail.
            return self._read_message(self.settings.limits.timeout_s * 2.1 + 10.0)
        except (SandboxError, OSError) as exc:
            asked_for_restart = self._exit_code() == RESTART_EXIT_CODE
            self.stop()
            self.restarts += 1
            if asked_for_restart and not self._buffer:
                # the zygote left after the previous run, having failed to wipe what that run
                # wrote: this run never started, and goes to a fresh jail
                return self.run(code, funcname, kwargs_json, depth, call_format, dry_run, elide,
                                elided)
            return {"status": "crashed", "detail": f"the sandbox died during the run ({exc})"}

    def _exit_code(self) -> int | None:
        try:
            return self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return None

    def _read_message(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        out = self._proc.stdout
        fd = out.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxError(f"no answer within {timeout_s:.0f} s")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                data = os.read(fd, 1 << 20)
                if not data:
                    raise SandboxError(f"the jail exited (code {self._proc.poll()})")
                self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)
