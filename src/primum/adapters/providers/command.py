"""A program run per fetch: argv (no shell), printing its numbers on stdout.

``argv`` and ``env`` values are templated with ``{{name}}`` placeholders (the
all-traffic fetch fills ``{{tenant}}`` with ``""``). The program gets only
the source's ``env`` plus ``PATH=/usr/local/bin:/usr/bin:/bin`` (nothing of
the controller's environment leaks into it), stdin from ``/dev/null``, and
its own process group. It must print:

* kind ``value``: one number, or several separated by whitespace (``nan`` allowed);
* kind ``proportion``: ``EVENTS TOTAL``, two counts.

After ``timeout`` seconds the whole process group is killed (SIGKILL); after a
normal exit whatever the program left running in its group is killed too. A
non-zero exit is a :class:`ProviderError` with the exit code and the last
line of stderr; a timeout or a non-zero exit is retried ``retries`` times.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess

from primum.adapters.providers.base import Scope, as_count, error, with_retries
from primum.core.analysis.data import Samples
from primum.core.model.analysis import CommandSource, MetricKind, MetricSpec, fill

NAME = "command"
MINIMAL_PATH = "/usr/local/bin:/usr/bin:/bin"
REAP_TIMEOUT_S = 5.0


class CommandProvider:
    """Stateless and thread-safe."""

    name = NAME

    def close(self) -> None:
        pass

    def fetch(self, metric: MetricSpec, scope: Scope) -> Samples:
        source = metric.source
        if not isinstance(source, CommandSource):
            raise TypeError(f"metric {metric.name!r}: not a command source")
        values = scope.placeholders()
        argv = [fill(arg, values) for arg in source.argv]
        env = {"PATH": MINIMAL_PATH, **{k: fill(v, values) for k, v in source.env.items()}}
        sent = shlex.join(argv)
        what = f"{NAME} {sent}"
        if len(what) > 160:
            what = what[:157] + "..."
        out = with_retries(lambda: _run(metric, what, argv, env, source.timeout), retries=source.retries)
        tokens = out.split()
        if not tokens:
            raise error(metric, what, "printed nothing on stdout", "print the number(s) on stdout")
        if metric.kind is MetricKind.proportion:
            counts = [_count(token) for token in tokens]
            if len(tokens) != 2 or counts[0] is None or counts[1] is None:
                raise error(metric, what, f"printed {_show(out)}, not 'EVENTS TOTAL'",
                            "a proportion command prints two counts: bad events, then all events")
            events, total = counts[0], counts[1]
            if events > total:
                raise error(metric, what, f"bad events ({events}) exceed all events ({total})",
                            "print bad events first, then all events")
            return Samples(events=events, total=total, source=sent)
        numbers: list[float] = []
        for token in tokens:
            try:
                numbers.append(float(token))
            except ValueError:
                raise error(metric, what, f"printed {_show(out)}: {token[:40]!r} is not a number",
                            "print only numbers separated by whitespace") from None
        return Samples(values=numbers, source=sent)


def _show(out: str) -> str:
    text = out.strip()
    return repr(text if len(text) <= 100 else text[:100] + "...")


def _count(token: str) -> int | None:
    try:
        value = float(token)
    except ValueError:
        return None
    if not value.is_integer():
        return None
    return as_count(value)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _run(metric: MetricSpec, what: str, argv: list[str], env: dict[str, str], timeout: float) -> str:
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group, killed as a whole
            close_fds=True,
        )
    except FileNotFoundError as exc:
        raise error(metric, what, f"cannot run {argv[0]!r}: not found",
                    f"use an absolute path or a program on PATH ({MINIMAL_PATH})") from exc
    except OSError as exc:
        raise error(metric, what, f"cannot run {argv[0]!r}: {exc}", "check the program and its permissions") from exc
    try:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=REAP_TIMEOUT_S)
            raise error(metric, what, f"did not finish within {timeout:g} s and was killed",
                        "raise the source's timeout or make the command faster", retryable=True) from None
    finally:
        # Whatever it left behind in its group (a stray background child) goes too.
        _kill_group(proc.pid)
        if proc.poll() is None:  # pragma: no cover - only if communicate itself failed
            proc.kill()
            proc.wait(REAP_TIMEOUT_S)
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1].strip() if lines else "(no stderr)"
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited with code {proc.returncode}")
        raise error(metric, what, f"{how}: {last[:300]}", "run the command by hand to see why", retryable=True)
    return out.decode("utf-8", "replace")
