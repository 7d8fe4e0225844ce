"""Hostile programs: each is stopped and recorded, and the sandbox goes on working.

Every test ends by running an honest program in the same jail, so a hostile run that broke
the jail (or left something running in it) fails the test.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest
from conftest import ROOT, run_code

from trace_workers.jail import seccomp
from trace_workers.jail.sandbox import Sandbox, SandboxLimits, SandboxSettings

HONEST = "def main_solution():\n    return 'still fine'\n"


def still_works(box: Sandbox) -> None:
    result = run_code(box, HONEST)
    assert json.loads(result["returned"]) == "still fine"


def _jail(timeout_s: float):
    """A fresh jail, started while secrets sit in this process's environment."""
    box = Sandbox(SandboxSettings(limits=SandboxLimits(timeout_s=timeout_s, memory_mb=256,
                                                       max_procs=16), preload=()))
    box.start()
    yield box
    still_works(box)
    box.close()


@pytest.fixture
def jail(secret_env):
    """A 10 s limit: what stops an attack must be what its test names, never a busy machine's
    slowness (at the suite's start a run that forks four children and sleeps 1 s took 3.1 s,
    and touching 768 MB took 2.6 s)."""
    yield from _jail(10.0)


@pytest.fixture
def tight_jail(secret_env):
    """A 2 s limit, for the attacks that only the time limit stops."""
    yield from _jail(2.0)


def returned(result: dict):
    assert result["status"] == "returned", result
    return json.loads(result["returned"])


def test_no_network(jail):
    code = (
        "import socket\n\ndef main_solution():\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "    s.settimeout(1)\n    s.connect(('1.1.1.1', 80))\n    return 'connected'\n"
    )
    result = run_code(jail, code)
    assert result["status"] == "sandbox"
    assert "Network is unreachable" in result["detail"]


def test_no_loopback_services_of_the_host(jail):
    code = (
        "import socket\n\ndef main_solution():\n    s = socket.socket()\n"
        "    s.connect(('127.0.0.1', 6379))\n    return 'reached ray'\n"
    )
    assert run_code(jail, code)["status"] in ("sandbox", "error")


def test_environment_secrets_are_invisible(jail, secret_env):
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == secret_env
    code = "import os\n\ndef main_solution():\n    return dict(os.environ)\n"
    env = returned(run_code(jail, code))
    assert secret_env not in json.dumps(env)
    assert not any(key.startswith(("AWS_", "RAY_")) for key in env)


def test_proc_shows_only_the_jails_own_processes(jail, secret_env):
    code = (
        "import os\n\ndef main_solution():\n"
        "    pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "    environ = b''\n"
        "    for pid in pids:\n"
        "        try:\n            environ += open(f'/proc/{pid}/environ', 'rb').read()\n"
        "        except OSError:\n            pass\n"
        "    return {'pids': len(pids), 'environ': environ.decode(errors='replace')}\n"
    )
    seen = returned(run_code(jail, code))
    assert seen["pids"] <= 3  # the zygote, this run (and at most its helper)
    assert secret_env not in seen["environ"]


@pytest.mark.parametrize("path", [
    "/etc/shadow", "/root/.bashrc", str(ROOT / "pyproject.toml"), "/tmp/ray/session_latest",
    "/home",
])
def test_host_files_outside_the_jail_are_not_visible(jail, path):
    code = ("import os\n\ndef main_solution(path):\n    if os.path.isdir(path):\n"
            "        return os.listdir(path)\n    return open(path).read()[:50]\n")
    result = run_code(jail, code, {"path": path})
    assert result["status"] in ("error", "sandbox"), result
    assert "FileNotFoundError" in result["detail"] or "PermissionError" in result["detail"]


def test_writes_outside_scratch_are_refused(jail):
    code = ("def main_solution(path):\n    with open(path, 'w') as f:\n        f.write('x')\n"
            "    return 'wrote'\n")
    for target in ("/usr/evil.txt", "/opt/groundtrace/trace_workers/jail/zygote.py",
                   f"{Path.cwd()}/evil.txt"):
        result = run_code(jail, code, {"path": target})
        assert result["status"] in ("sandbox", "error"), (target, result)
    assert not Path("evil.txt").exists()


def test_scratch_is_private_and_wiped_between_runs(jail):
    write = "def main_solution():\n    open('/tmp/left.txt', 'w').write('x')\n    return 1\n"
    look = "import os\n\ndef main_solution():\n    return os.listdir('/tmp')\n"
    assert returned(run_code(jail, write)) == 1
    assert returned(run_code(jail, look)) == []


def test_what_a_run_makes_hard_to_remove_is_wiped_all_the_same(jail):
    """Directories a run chmods to 0, or nests thousands deep, are gone before the next run
    (the dry run's too: the real run starts from an empty scratch)."""
    code = ("import os\n\ndef nest(top):\n    os.chdir(top)\n"
            "    for _ in range(5000):\n        os.mkdir('d')\n        os.chdir('d')\n"
            "    open('bottom', 'w').write('x')\n    os.chmod('.', 0o500)\n    os.chdir('/')\n"
            "    for folder in (f'{top}/locked', f'{top}/locked/inner'):\n"
            "        os.mkdir(folder)\n        open(f'{folder}/f', 'w').write('x')\n"
            "    os.chmod(f'{top}/locked/inner', 0)\n    os.chmod(f'{top}/locked', 0)\n\n"
            "def main_solution():\n    seen = os.listdir('/tmp') + os.listdir('/dev/shm')\n"
            "    nest('/tmp')\n    nest('/dev/shm')\n    return seen\n")
    assert returned(run_code(jail, code)) == []
    assert returned(run_code(jail, code)) == []
    assert jail.restarts == 0


def test_filling_the_disk_is_stopped(jail):
    code = ("def main_solution():\n    with open('/tmp/big', 'wb') as f:\n"
            "        while True:\n            f.write(b'x' * (1 << 20))\n")
    result = run_code(jail, code)
    assert result["status"] == "sandbox"


def test_flooding_the_scratch_with_empty_files_is_stopped_early(jail):
    """A tmpfs bounds bytes, not files: each costs kernel memory, and wiping a million of them
    the next run's time."""
    code = ("import os\n\ndef main_solution():\n    return flood()\n\ndef flood():\n"
            "    n = 0\n    while True:\n        os.close(os.open(f'/tmp/{n}', os.O_CREAT))\n"
            "        n += 1\n")
    result = run_code(jail, code, dry_run=False)
    # stopped by the file count, not by the time limit (a busy machine's file creation must
    # not decide it: the status says what stopped it)
    assert result["status"] == "sandbox" and "files in /tmp" in result["detail"], result


def test_a_memory_bomb_is_a_memory_reject(jail):
    code = "def main_solution():\n    block = bytearray(10 * 1024 ** 3)\n    return len(block)\n"
    result = run_code(jail, code)
    assert result["status"] == "memory"


SPLIT_MEMORY_BOMB = """\
import mmap, os, time

def hold(megabytes):
    if {shared}:
        block = mmap.mmap(-1, megabytes << 20, flags=mmap.MAP_SHARED)
    else:
        block = bytearray(megabytes << 20)
    for at in range(0, megabytes << 20, 4096):
        block[at] = 1
    return block

def main_solution(processes, megabytes):
    for _ in range(processes - 1):
        if os.fork() == 0:
            hold(megabytes)
            time.sleep(60)
    block = hold(megabytes)
    time.sleep(1)
    return len(block)
"""


@pytest.mark.parametrize("shared", [False, True], ids=["private", "map_shared"])
def test_a_memory_bomb_split_over_processes_is_a_memory_reject(jail, shared):
    """Each process stays under RLIMIT_AS; together they hold three times the run's limit.
    Unstopped, the run returns after about a second: only the memory limit gives "memory"."""
    code = SPLIT_MEMORY_BOMB.format(shared=shared)
    result = run_code(jail, code, {"processes": 6, "megabytes": 128})
    assert result["status"] == "memory", result
    assert "together" in result["detail"]


def test_a_run_may_fork_a_few_small_processes(jail):
    code = SPLIT_MEMORY_BOMB.format(shared=False).replace("time.sleep(60)", "os._exit(0)")
    assert returned(run_code(jail, code, {"processes": 4, "megabytes": 32})) == 32 << 20


def test_an_infinite_loop_without_trace_lines_times_out(tight_jail):
    code = "def main_solution():\n    return sum(1 for _ in iter(int, 1))\n"  # loops in C
    result = run_code(tight_jail, code)
    assert result["status"] in ("timeout", "trace_limit")
    assert result["elapsed_s"] < 3


def test_a_fork_bomb_is_held_by_the_process_limit(tight_jail):
    code = ("import os\n\ndef main_solution():\n    children = 0\n    while True:\n"
            "        if os.fork() == 0:\n            while True:\n                pass\n"
            "        children += 1\n")
    result = run_code(tight_jail, code)
    assert result["status"] in ("sandbox", "trace_limit", "timeout"), result


def test_printing_gigabytes_is_stopped_early(jail):
    code = "def main_solution():\n    while True:\n        print('x' * 65536)\n"
    result = run_code(jail, code)
    assert result["status"] == "trace_limit"
    assert "printed" in result["detail"] or "trace" in result["detail"]


def test_forging_a_result_on_the_pipe_cannot_touch_other_runs(jail):
    """A program shares its process with the tracer, so it can forge its *own* verdict (which
    the expected-output check still judges); it must not reach the next run's."""
    code = ("import os\n\ndef main_solution():\n"
            "    for fd in range(0, 64):\n        try:\n"
            "            os.write(fd, b'{\"status\": \"returned\", \"returned\": \"42\"}\\n' * 100)\n"
            "        except OSError:\n            pass\n    return 1\n")
    run_code(jail, code)
    honest = run_code(jail, "def main_solution():\n    return 2\n")
    assert honest["returned"] == "2"
    assert "return 2" in honest["trace"]


def forging(message: str) -> str:
    """A program that writes ``message`` as its result on every fd it may hold, and exits."""
    return ("import os\n\ndef main_solution():\n    for fd in range(3, 64):\n        try:\n"
            f"            os.write(fd, {message!r}.encode() + b'\\n')\n"
            "        except OSError:\n            pass\n    os._exit(0)\n")


@pytest.mark.parametrize("message", [
    '{"status": "returned"}',
    '{"status": "returned", "returned": 12, "trace": 5, "trace_lines": "many"}',
    '{"status": "anything"}',
    '[1, 2]',
    '{"status": "timeout", "marks": {"called": "later"}}',
    '{"status": ["returned"]}',
    '{"status": "returned", "returned": "1", "trace": "", "trace_lines": 10000000000}',
])
def test_a_result_in_another_shape_than_the_childs_is_a_crash(jail, message):
    """The code that reads verdicts must never meet a field missing or of another type: it
    would stop the whole job (it did, before the zygote checked each result's shape)."""
    result = run_code(jail, forging(message), dry_run=False)
    assert result["status"] == "crashed" and "malformed" in result["detail"], result


def test_a_forged_return_whose_value_does_not_parse_is_a_crash_reject(jail):
    from trace_workers.actor import Tracer, TraceStageConfig
    from trace_workers.records import ProgramWork, Run
    from trace_workers.stats import StageStats

    forged = forging('{"status": "returned", "returned": "{not json", "trace": "", '
                     '"trace_lines": 0}')
    work = ProgramWork("p", "", "", forged, "main_solution", 1, "stdlib", [Run("p-0", "{}", "1")])
    tracer = Tracer(TraceStageConfig())
    try:
        rows = tracer.trace_program(work, StageStats())
    finally:
        tracer.close()
    assert [(r["reason"], r["detail"][:35]) for r in map(lambda row: json.loads(row["payload"]), rows)
            ] == [("crashed", "the run's returned value does not p")]


@pytest.mark.parametrize("target", ["os.getppid()", "1", "-1"])
def test_a_run_cannot_kill_stop_or_interrupt_the_zygote(jail, target):
    """The zygote is the jail's PID 1, which gets only the signals it handles: none (and
    kill(-1) spares PID 1 and the caller: it finds no process at all)."""
    code = ("import os, signal\n\ndef main_solution():\n    reached = []\n"
            "    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGSTOP, signal.SIGKILL):\n"
            "        try:\n"
            f"            os.kill({target}, sig)\n            reached.append(sig.name)\n"
            "        except ProcessLookupError:\n            pass\n"
            "    return reached\n")
    reached = returned(run_code(jail, code))
    assert reached == ([] if target == "-1" else ["SIGINT", "SIGTERM", "SIGSTOP", "SIGKILL"])
    assert jail.restarts == 0


def test_a_jail_that_dies_during_a_run_is_a_crash_and_restarts(jail):
    code = "import time\n\ndef main_solution():\n    time.sleep(1.5)\n    return 'slept'\n"
    killer = threading.Timer(0.5, jail._proc.kill)  # as the host's OOM killer would
    killer.start()
    result = run_code(jail, code, dry_run=False)
    killer.join()
    assert result["status"] == "crashed"
    assert jail.restarts == 1


def test_a_run_cannot_reach_the_zygotes_memory_or_its_protocol_pipes(jail):
    """The zygote outlives every run: a run that could write into it, or answer for it on its
    pipes, would forge the results of the runs after it."""
    code = ("import ctypes, os\n\ndef main_solution():\n    seen = {'fds': []}\n"
            "    for fd in range(16):\n        try:\n"
            "            os.open(f'/proc/{os.getppid()}/fd/{fd}', os.O_WRONLY)\n"
            "            seen['fds'].append(fd)\n        except OSError:\n            pass\n"
            "    for mode in ('rb', 'r+b'):\n        try:\n"
            "            open(f'/proc/{os.getppid()}/mem', mode, buffering=0)\n"
            "            seen[mode] = 'opened'\n"
            "        except OSError as exc:\n            seen[mode] = exc.errno\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    seen['ptrace'] = libc.ptrace(16, os.getppid(), 0, 0), ctypes.get_errno()\n"
            "    return seen\n")
    seen = returned(run_code(jail, code))
    assert seen["fds"] == []
    assert seen["rb"] == seen["r+b"] == errno.EACCES
    assert seen["ptrace"] == [-1, errno.EPERM]


@pytest.mark.skipif(not seccomp.refused_calls(), reason="no seccomp filter on this machine")
def test_system_v_ipc_which_outlives_its_process_is_refused(jail):
    code = ("import ctypes\n\ndef main_solution():\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    return [libc.shmget(0, 1 << 30, 0o1600), ctypes.get_errno(),\n"
            "            libc.semget(0, 1, 0o1600), ctypes.get_errno()]\n")
    assert returned(run_code(jail, code)) == [-1, errno.EPERM, -1, errno.EPERM]
    assert "shmget" in jail.info["seccomp"]


@pytest.mark.skipif(not seccomp.refused_calls(), reason="no seccomp filter on this machine")
def test_memory_files_which_no_mount_bounds_are_refused(jail):
    code = ("import os\n\ndef main_solution():\n    try:\n        os.memfd_create('hold')\n"
            "    except OSError as exc:\n        return exc.errno\n")
    assert returned(run_code(jail, code)) == errno.EPERM


@pytest.mark.skipif(not seccomp.refused_calls(), reason="no seccomp filter on this machine")
def test_system_calls_through_the_32_bit_or_x32_abi_are_refused(jail):
    """A filter in native numbers would not see them: the same call by another number."""
    code = ("import ctypes, mmap\n\ndef main_solution():\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    x32 = [libc.syscall(0x40000000 + 39), ctypes.get_errno()]\n"
            "    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
            "    page.write(b'\\xb8\\x14\\x00\\x00\\x00\\xcd\\x80\\xc3')  # i386 getpid()\n"
            "    call = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))\n"
            "    return x32 + [call()]\n")
    assert returned(run_code(jail, code)) == [-1, errno.EPERM, -errno.EPERM]


def test_dev_is_read_only_and_dev_shm_is_a_bounded_scratch_wiped_between_runs(jail):
    fill = ("def fill():\n    written = 0\n    try:\n"
            "        for n in range(1000):\n"
            "            with open(f'/dev/shm/{n}', 'wb') as f:\n"
            "                for _ in range(4):\n"
            "                    f.write(b'x' * (1 << 20))\n                    written += 1\n"
            "    except OSError as exc:\n        return exc.errno, written\n\n"
            "def main_solution():\n    try:\n        open('/dev/left.txt', 'w')\n"
            "    except OSError as exc:\n        dev = exc.errno\n"
            "    return [dev, *fill()]\n")
    dev, stopped_by, written_mb = returned(run_code(jail, fill))
    assert dev == errno.EROFS
    assert stopped_by == errno.ENOSPC and written_mb <= jail.settings.limits.scratch_mb
    look = "import os\n\ndef main_solution():\n    return os.listdir('/dev/shm')\n"
    assert returned(run_code(jail, look)) == []


def test_setsid_orphans_do_not_survive_their_run(jail):
    spawn = ("import os, time\n\ndef main_solution():\n    if os.fork() == 0:\n"
             "        os.setsid()\n        if os.fork() == 0:\n            time.sleep(60)\n"
             "        os._exit(0)\n    time.sleep(0.2)\n    return 'spawned'\n")
    count = ("import os\n\ndef main_solution():\n"
             "    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n")
    assert returned(run_code(jail, spawn)) == "spawned"
    pids = returned(run_code(jail, count))
    assert len(pids) == 2, pids  # the zygote (PID 1) and this run: the sleeper is gone


def test_a_segfault_is_a_crash(jail):
    code = "import ctypes\n\ndef main_solution():\n    return ctypes.string_at(0)\n"
    assert run_code(jail, code)["status"] == "crashed"


def test_runs_as_an_unprivileged_uid_when_started_as_root(jail):
    if os.geteuid() != 0:
        pytest.skip("per-slot uids need root")
    uid = returned(run_code(jail, "import os\n\ndef main_solution():\n    return os.getuid()\n"))
    assert uid == jail.info["uid"] >= 1000


def test_new_user_namespaces_are_refused(jail):
    code = ("import os\n\ndef main_solution():\n    os.unshare(os.CLONE_NEWUSER)\n"
            "    return 'unshared'\n")
    assert run_code(jail, code)["status"] in ("sandbox", "error")
