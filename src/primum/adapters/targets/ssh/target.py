"""The SSH target: apply a version by running the declared commands on the host through ``asyncssh``
(and its ``command`` variant, which runs them on the controller's machine, no SSH).

``apply`` never blocks the controller's tick: a deploy (then verify) or a revert runs in a background
thread and ``observe`` reports it (starting, ready, or failed with the exit code and the redacted, bounded
output). What the host runs, and what was asked, is persisted under the primum home, so a restarted
controller does not repeat a finished deploy; a job that was in flight when the controller stopped is
run again (the declared commands must be idempotent: docs/TARGETS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import threading
from pathlib import Path
from typing import Any

import asyncssh

from primum.adapters.secrets import SecretUnavailable, resolve_env
from primum.adapters.targets.base import StaleFenceError, TargetError
from primum.adapters.targets.ssh.settings import CommandTargetSettings, SshCommand, SshTargetSettings
from primum.core.evidence.redact import redact_text
from primum.core.model.actions import (
    Action,
    EnsureInstances,
    RouteObservation,
    ServiceObservation,
    ServiceRuntimeSpec,
    SetRoute,
    VersionObservation,
    VersionRef,
)

MAX_OUTPUT_CHARS = 2000  # of each command's output kept in the state, events and reasons


class CommandFailed(Exception):
    """A declared command could not be run, timed out, or exited non-zero; the message says which and why."""


def _bounded(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_OUTPUT_CHARS:
        text = "..." + text[-MAX_OUTPUT_CHARS:]
    return redact_text(text)[0]


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value or ""


def render(command: SshCommand, version: VersionRef) -> str:
    values = {"artifact": version.artifact, "version": version.label, "digest": version.digest}
    out = command.run
    for name, value in values.items():
        out = out.replace("{" + name + "}", shlex.quote(value))
    return out


async def run_commands(settings: SshTargetSettings, commands: list[tuple[str, SshCommand]],
                       version: VersionRef) -> str:
    """Run ``commands`` in order on the host; the last one's output, or :class:`CommandFailed`."""
    where = f"ssh {settings.user}@{settings.host}:{settings.port}"
    try:
        key_text = resolve_env({"key": settings.key})["key"]
        key = asyncssh.import_private_key(key_text)
    except SecretUnavailable as exc:
        raise CommandFailed(f"{where}: the private key cannot be read: {exc}") from None
    except (asyncssh.KeyImportError, ValueError):
        raise CommandFailed(f"{where}: target.key does not hold an OpenSSH private key; fix: point it at the "
                            "private key file or variable") from None
    if not Path(settings.known_hosts).is_file():
        raise CommandFailed(f"{where}: known_hosts {settings.known_hosts} does not exist; fix: write the host's "
                            "public key there (ssh-keyscan, checked out of band)")
    try:
        conn = await asyncio.wait_for(asyncssh.connect(
            settings.host, port=settings.port, username=settings.user, client_keys=[key],
            known_hosts=settings.known_hosts, agent_path=None, config=[],
            connect_timeout=settings.connect_timeout), settings.connect_timeout + 1)
    except asyncssh.HostKeyNotVerifiable:
        raise CommandFailed(f"{where}: the host key does not match known_hosts {settings.known_hosts} (refused; "
                            "fix: check the host out of band, then correct known_hosts)") from None
    except asyncssh.PermissionDenied:
        raise CommandFailed(f"{where}: the host refused the key of target.key (permission denied); fix: add its "
                            "public key to the user's authorized_keys, or correct target.key/user") from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise CommandFailed(f"{where}: cannot connect ({type(exc).__name__}: {exc}); fix: check host, port and "
                            "that sshd runs") from None
    output = ""
    async with conn:
        for name, command in commands:
            try:
                result = await conn.run(render(command, version), check=False, timeout=command.timeout)
            except asyncssh.TimeoutError as exc:
                seen = _bounded(_text(exc.stdout) + _text(exc.stderr))
                raise CommandFailed(f"{name} command timed out after {command.timeout:g}s on {where}"
                                    + (f"; output: {seen}" if seen else "")) from None
            except (OSError, asyncssh.Error) as exc:
                raise CommandFailed(f"{name} command could not run on {where}: {exc}") from None
            output = _bounded(_text(result.stdout) + _text(result.stderr))
            if result.exit_status != 0:
                status = result.exit_status if result.exit_status is not None else f"signal {result.exit_signal}"
                raise CommandFailed(f"{name} command exited {status} on {where}"
                                    + (f"; output: {output}" if output else ""))
    return output


async def run_local(settings: CommandTargetSettings, commands: list[tuple[str, SshCommand]],
                    version: VersionRef) -> str:
    """Run ``commands`` in order through ``sh -c`` here; the last one's output, or :class:`CommandFailed`."""
    output = ""
    for name, command in commands:
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh", "-c", render(command, version), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise CommandFailed(f"{name} command could not start: {exc.strerror or exc}") from None
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), command.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: a child must not keep the pipe open
            await proc.wait()
            raise CommandFailed(f"{name} command timed out after {command.timeout:g}s (killed)") from None
        output = _bounded(_text(out))
        if proc.returncode != 0:
            raise CommandFailed(f"{name} command exited {proc.returncode}" + (f"; output: {output}" if output else ""))
    return output


class SshTarget:
    """One per (estate, type): the state of every service on an SSH host (or, for ``kind="command"``, on
    the controller's machine), and its background jobs."""

    def __init__(self, home: Path, estate: str, kind: str = "ssh"):
        self.name = kind
        self._dir = home / "targets" / kind / estate
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._routes: dict[str, RouteObservation] = {}

    # ---------------------------------------------------------------- state

    def _path(self, spec: ServiceRuntimeSpec) -> Path:
        return self._dir / f"{spec.env}--{spec.service}.json"

    def _load(self, spec: ServiceRuntimeSpec) -> dict[str, Any]:
        path = self._path(spec)
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return data
        except FileNotFoundError:
            return {"current": None, "previous": None, "job": None, "fence": 0}
        except (OSError, ValueError) as exc:  # never guess what the host runs
            raise TargetError(f"{path}: the {self.name} target's state cannot be read ({type(exc).__name__}); "
                              "fix: restore it, or delete it and check by hand what the host runs") from None

    def _save(self, spec: ServiceRuntimeSpec, state: dict[str, Any]) -> None:
        path = self._path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
        os.replace(tmp, path)  # never half-written

    # -------------------------------------------------------------- actions

    def prepare(self, specs: list[ServiceRuntimeSpec]) -> None:
        pass  # nothing to create: the host exists

    def apply(self, action: Action, spec: ServiceRuntimeSpec, fence: int) -> None:
        with self._lock:
            state = self._load(spec)
            if fence < state["fence"]:
                raise StaleFenceError(f"{spec.key}: fence {fence} is older than {state['fence']}")
            if fence != state["fence"]:
                state["fence"] = fence
                self._save(spec, state)
            if isinstance(action, SetRoute):
                # no traffic control: the route is what was asked; the applied version serves everything
                self._routes[spec.key] = RouteObservation(weights=dict(action.weights), preview=action.preview,
                                                          fence=fence)
                return
            assert isinstance(action, EnsureInstances)
            if action.count == 0:
                return  # applying another version replaces this one; there is nothing to stop
            self._ensure(spec, state, action.version)

    def _ensure(self, spec: ServiceRuntimeSpec, state: dict[str, Any], version: VersionRef) -> None:
        current = state["current"]
        job = state["job"]
        if current and current["digest"] == version.digest and job is None:
            return  # already applied: idempotent
        if job and job["version"]["digest"] == version.digest:
            if job["status"] != "running" or spec.key in self._threads:
                return  # in flight, or failed (a failed version is not retried by the same release)
            self._start(spec, state)  # in flight when the controller stopped: run it again
            return
        previous = state["previous"]
        op = "revert" if previous and previous["digest"] == version.digest else "deploy"
        if op == "deploy":
            state["previous"] = current if current else previous
        state["current"] = None  # while a command runs, the host's version is not known
        state["job"] = {"op": op, "version": version.model_dump(), "status": "running", "error": None}
        self._save(spec, state)
        self._start(spec, state)

    def _start(self, spec: ServiceRuntimeSpec, state: dict[str, Any]) -> None:
        job = state["job"]
        thread = threading.Thread(target=self._run, args=(spec, job["op"], VersionRef(**job["version"])),
                                  name=f"ssh-{spec.key}", daemon=True)
        self._threads[spec.key] = thread
        thread.start()

    def _run(self, spec: ServiceRuntimeSpec, op: str, version: VersionRef) -> None:
        settings: SshTargetSettings | CommandTargetSettings
        if self.name == "command":
            settings = CommandTargetSettings.model_validate(spec.target_settings)
        else:
            settings = SshTargetSettings.model_validate(spec.target_settings)
        commands: list[tuple[str, SshCommand]]
        if op == "deploy":
            commands = [("deploy", settings.deploy)] + ([("verify", settings.verify)] if settings.verify else [])
        elif settings.revert is not None:
            commands = [("revert", settings.revert)]
        else:
            commands = []
        error: str | None = None
        output = ""
        if not commands:
            error = f"{spec.key}: the target has no revert command (forward-only); revert by hand"
        else:
            try:
                if isinstance(settings, SshTargetSettings):
                    output = asyncio.run(run_commands(settings, commands, version))
                else:
                    output = asyncio.run(run_local(settings, commands, version))
            except CommandFailed as exc:
                error = str(exc)
            except Exception as exc:  # a fault of the job is reported, never a pass
                error = f"{spec.key}: {op} failed: {type(exc).__name__}"
        with self._lock:
            state = self._load(spec)
            job = state["job"]
            if job is None or job["version"]["digest"] != version.digest or job["op"] != op:
                self._threads.pop(spec.key, None)
                return  # superseded
            if error is None:
                state["current"] = version.model_dump()
                state["job"] = None
                state["last_output"] = output
            else:
                job["status"] = "failed"
                job["error"] = error
            self._save(spec, state)
            self._threads.pop(spec.key, None)

    # ---------------------------------------------------------- observation

    def observe(self, spec: ServiceRuntimeSpec, metrics: bool = False) -> ServiceObservation:
        with self._lock:
            state = self._load(spec)
            route = self._routes.get(spec.key)
        n = spec.replicas
        versions: dict[str, VersionObservation] = {}
        current = VersionRef(**state["current"]) if state["current"] else None
        if current is not None:
            versions[current.key] = VersionObservation(version=current, desired=n, ready=n)
        job = state["job"]
        if job is not None:
            ref = VersionRef(**job["version"])
            if job["status"] == "running":
                versions[ref.key] = VersionObservation(version=ref, desired=n, starting=n)
            else:
                versions[ref.key] = VersionObservation(version=ref, desired=n, failed=n, error=job["error"])
        if route is None:
            route = RouteObservation(weights={current.key: 100} if current else {})
        return ServiceObservation(env=spec.env, service=spec.service, versions=versions, route=route,
                                  metrics=None, metrics_error=f"the {self.name} target has no router metrics"
                                  if metrics else None)

    def router_url(self, spec: ServiceRuntimeSpec) -> str | None:
        return None

    def router_admin(self, spec: ServiceRuntimeSpec) -> str | None:
        return None

    def close(self) -> None:
        pass  # jobs finish in their daemon threads; their results are persisted
