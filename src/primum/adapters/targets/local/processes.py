"""The processes of the local data plane: identity, signals, reaping, spawning, ports, logs.

A pid alone does not identify a process (pids are reused), so every record
also stores the process start time from ``/proc/<pid>/stat``; a process is
"ours and alive" only if both match and it is not a zombie. Children start in
their own session (``start_new_session=True``) so that the data plane outlives
the controller; the pid is then also the process group id, and signals go to
the whole group, so helpers an instance spawns die with it.

Nothing here knows about routers, instances or the state file: these are the
blocking-free (except :func:`terminate`) primitives the runtime composes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from primum.adapters.targets.base import TargetError

TERM_GRACE_S = 5.0  # SIGTERM -> SIGKILL
LOG_TAIL_LINES = 12
LOG_TAIL_CHARS = 2000


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, or None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    rest = data[data.rfind(")") + 2 :].split()
    try:
        return rest[0], int(rest[19])  # fields 3 and 22
    except (IndexError, ValueError):
        return None


def same_process(pid: int, start_time: int) -> bool:
    """The pid still names the process we recorded (possibly a zombie)."""
    st = proc_stat(pid)
    return st is not None and st[1] == start_time


def is_alive(pid: int, start_time: int) -> bool:
    """The recorded process runs: same pid, same start time, not a zombie.

    A zombie child of this process is reaped on the way so that it does not
    linger in the process table.
    """
    st = proc_stat(pid)
    if st is None or st[1] != start_time:
        return False
    if st[0] in ("Z", "X"):
        _reap(pid)
        return False
    return True


# Popen objects of the children this process started, so that their exit
# status is collected (no zombies) and exit codes can be reported.
_children: dict[int, subprocess.Popen[bytes]] = {}
_exit_codes: dict[int, int] = {}
_children_lock = threading.Lock()


def _reap(pid: int) -> int | None:
    """Collect the exit status of a child of this process, if it has exited."""
    with _children_lock:
        proc = _children.get(pid)
        if proc is not None:
            rc = proc.poll()
            if rc is not None:
                _children.pop(pid, None)
                _exit_codes[pid] = rc
            return rc
        if pid in _exit_codes:
            return _exit_codes[pid]
    try:
        wpid, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None  # not our child (adopted): init reaps it
    if wpid == 0:
        return None
    rc = os.waitstatus_to_exitcode(status)
    with _children_lock:
        _exit_codes[pid] = rc
    return rc


def exit_text(pid: int) -> str:
    with _children_lock:
        rc = _exit_codes.get(pid)
    if rc is None:
        return "exited"
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"


def signal_group(pid: int, start_time: int, sig: int) -> bool:
    """Signal the process group of a process we started, if the pid is still it."""
    if not same_process(pid, start_time):
        return False
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        try:  # the process left its group: signal it alone
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
    except PermissionError:
        return False
    return True


def _running(pid: int, start_time: int) -> bool:
    """Like :func:`is_alive` but never reaps, so a zombie leader keeps pinning its pid."""
    st = proc_stat(pid)
    return st is not None and st[1] == start_time and st[0] not in ("Z", "X")


def _wait_gone(pids: Sequence[tuple[int, int]], timeout: float) -> list[tuple[int, int]]:
    """Wait until the processes are gone or zombies; return those still running."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while True:
        left = [p for p in left if _running(*p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def terminate(procs: Sequence[tuple[int, int]], grace: float = TERM_GRACE_S, send_term: bool = True) -> None:
    """SIGTERM, wait up to ``grace``, SIGKILL, wait: blocking; leaves no process behind.

    Each ``(pid, start_time)`` is a group leader we started. Leaders that are
    zombies still hold their pid, so their group can be swept with SIGKILL
    safely before they are reaped.
    """
    procs = [p for p in procs if same_process(*p)]
    if send_term:
        for pid, start in procs:
            signal_group(pid, start, signal.SIGTERM)
    left = _wait_gone(procs, grace)
    for pid, start in left:
        signal_group(pid, start, signal.SIGKILL)
    _wait_gone(left, grace)
    for pid, start in procs:
        # Sweep leftovers of the group (e.g. helpers ignoring SIGTERM) while
        # the zombie leader still pins the pid, then reap the leader.
        signal_group(pid, start, signal.SIGKILL)
        _reap(pid)


def terminate_async(pid: int, start_time: int, what: str) -> None:
    """Stop one process without blocking the caller: a daemon reaper thread waits."""
    signal_group(pid, start_time, signal.SIGTERM)
    threading.Thread(
        target=terminate,
        args=([(pid, start_time)], TERM_GRACE_S, False),
        name=f"primum-stop-{what}",
        daemon=True,
    ).start()



def free_port(exclude: Iterable[int] = ()) -> int:
    """A currently free loopback TCP port (not one we have already handed out)."""
    taken = set(exclude)
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise TargetError("no free loopback port found")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file, for error messages a person can act on."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    tail = "\n".join(data.splitlines()[-lines:])
    return tail[-LOG_TAIL_CHARS:] if tail else "(log empty)"


def spawn(argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> tuple[int, int]:
    """Start a detached child (own session) logging to ``log_path``; (pid, start time)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as logf:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        logf.write(f"=== primum {stamp} start: {' '.join(argv)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    with _children_lock:
        _children[proc.pid] = proc
    st = proc_stat(proc.pid)  # our unreaped child: readable even if it already died
    if st is None:
        raise TargetError(f"started {argv[0]} (pid {proc.pid}) but cannot read its /proc entry")
    return proc.pid, st[1]



def started_children() -> list[subprocess.Popen[bytes]]:
    """The children this process started and has not reaped yet.

    For a last-resort cleanup (tests, benchmarks) that must kill whatever a
    failed run left behind, and to check that nothing was started.
    """
    with _children_lock:
        return list(_children.values())
