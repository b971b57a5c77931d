"""The compile check in a forked child: a rego-cpp crash becomes a ``PolicyError``, not a dead process.

rego-cpp aborts the whole process on some inputs (e.g. ``with input as {...}``
over certain rules). An organisation's bundle is therefore compiled once in a
child first; if the child dies of a signal, ``load`` raises ``PolicyError`` with
rego-cpp's last words and, when it applies, the known cause and its fix. The
child's compile is thrown away; the parent compiles again in-process.
"""

from __future__ import annotations

import faulthandler
import os
import re
import select
import signal
import time
from collections.abc import Sequence

import regopy

from primum.adapters.policy.compiler import compile_modules
from primum.adapters.policy.files import PolicyError, PolicyFile, code_only

_WHOLE_INPUT_WITH = re.compile(r"\bwith\s+input\s+as\b")


def preflight(files: Sequence[PolicyFile], entrypoints: Sequence[str], timeout: float = 60.0) -> None:
    """Compile in a forked child first: rego-cpp aborts the whole process on some inputs
    (e.g. ``with input as {...}`` over certain rules), which must be a PolicyError, not a crash.

    Where ``fork`` does not exist, or the child outlives ``timeout``, the check is skipped
    (the in-process compile that follows still reports ordinary compile errors)."""
    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compile, report by exit code
        code = 0
        faulthandler.disable()  # an abort is the expected failure here: no traceback on the parent's stderr
        try:
            os.dup2(write, 1)
            os.dup2(write, 2)
            compile_modules(files, entrypoints)
        except PolicyError:
            code = 3
        except BaseException:
            code = 4
        os._exit(code)
    os.close(write)
    output = b""
    deadline = time.monotonic() + timeout
    status = None
    try:
        while True:
            ready, _, _ = select.select([read], [], [], max(0.0, min(0.05, deadline - time.monotonic())))
            if ready:
                chunk = os.read(read, 65536)
                output += chunk
                if chunk:
                    continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:  # give up the check, compile in-process
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return
    finally:
        os.close(read)
    if status is not None and os.WIFSIGNALED(status):
        detail = output.decode(errors="replace").strip().splitlines()
        hint = ""
        suspects = [f.label for f in files if _WHOLE_INPUT_WITH.search(code_only(f.source))]
        if suspects:
            hint = ("; rego-cpp is known to crash on `with input as {...}` (replacing the whole input): "
                    "write one `with input.<key> as ...` per key instead, in " + ", ".join(suspects))
        raise PolicyError(
            f"the Rego compiler (rego-cpp {regopy.__version__}) crashed on this policy bundle "
            f"(signal {os.WTERMSIG(status)}: {' '.join(detail[-2:]) or 'no message'}){hint}")
