"""Use cases of the local runtime: run an estate in the foreground with its controller (`primum up`), stop
it from another terminal (`primum down`), list its routers.

While it runs, ``HOME/up.json`` names the foreground process and the estate file, so that ``down`` knows
whom to signal and other commands know which estate is meant (``releases.resolve_estate``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from primum.app.bootstrap import Primum

MARKER = "up.json"
DOWN_WAIT_S = 10.0


@dataclass(frozen=True)
class RouterAddress:
    env: str
    service: str
    url: str  # the data port
    admin: str = ""  # the admin API's Unix socket (owner only)
    metrics: str = ""  # the Prometheus endpoint (bearer token in the router's metrics_token file)


def routers(home: Path, estate: str) -> list[RouterAddress]:
    """The routers the local runtime of ``estate`` has started, from its state file."""
    state = home / "runtime" / f"{estate}.json"
    if not state.is_file():
        return []
    data = json.loads(state.read_text())
    return [RouterAddress(str(r.get("env")), str(r.get("service")), f"http://127.0.0.1:{r.get('port')}",
                          str(r.get("admin_socket") or ""),
                          f"http://127.0.0.1:{r['metrics_port']}/metrics" if r.get("metrics_port") else "")
            for r in data.get("routers", [])]


def run_up(app: Primum, estate_file: Path, *, lease_ttl: float, on_ready: Callable[[str, list[RouterAddress]], None],
           on_event: Callable[[str, Any], None], on_stopping: Callable[[], None],
           on_stopped: Callable[[], None]) -> None:
    """Start the estate's local services and run the controller until SIGTERM or Ctrl-C, then stop every
    process of the runtime (also when starting failed half-way)."""
    from primum.adapters.targets.local.runtime import LocalRuntime
    from primum.app.controller import Controller
    from primum.app.plugins import load_plugins
    from primum.core.model.validate import load_estate, runtime_spec

    load_plugins()
    estate = load_estate(estate_file)
    home = app.home
    store = app.store
    marker = home / MARKER
    marker.write_text(json.dumps({"pid": os.getpid(), "estate": str(estate_file.resolve()), "name": estate.name}))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for name, service in estate.services.items():
            if service.target.type == "local":
                specs = [runtime_spec(estate, env, name) for env in estate.environment_names()]
                app.targets.for_service(estate, name).prepare(specs)
        on_ready(estate.name, routers(home, estate.name))
        controller = Controller(store, app.targets, lease_ttl=lease_ttl, on_event=on_event)
        with contextlib.suppress(KeyboardInterrupt):
            controller.run(stop)
        controller.shutdown()
    finally:
        on_stopping()
        LocalRuntime(home, estate.name).stop_all()
        marker.unlink(missing_ok=True)
        on_stopped()


def stop_all(home: Path) -> int:
    """Signal a running `primum up` (and wait for it), then stop every local runtime recorded in ``home``;
    the number of runtimes stopped."""
    from primum.adapters.targets.local.runtime import LocalRuntime

    marker = home / MARKER
    if marker.is_file():
        pid = json.loads(marker.read_text()).get("pid")
        try:
            os.kill(int(pid), signal.SIGTERM)
            deadline = time.monotonic() + DOWN_WAIT_S
            while time.monotonic() < deadline:
                os.kill(int(pid), 0)  # raises once it is gone
                time.sleep(0.1)
        except (ProcessLookupError, TypeError, ValueError):
            pass
        marker.unlink(missing_ok=True)
    stopped = 0
    runtime_dir = home / "runtime"
    for state in sorted(runtime_dir.glob("*.json")) if runtime_dir.is_dir() else []:
        if state.name.endswith("-traffic.json"):
            continue
        LocalRuntime(home, state.stem).stop_all()
        stopped += 1
    return stopped


def run_controller(app: Primum, *, once: bool, lease_ttl: float, on_event: Callable[[str, Any], None]) -> None:
    """The reconcile loop (`primum controller`): one pass, or until SIGTERM or Ctrl-C; never leaves a lease."""
    from primum.app.controller import Controller

    controller = Controller(app.store, app.targets, lease_ttl=lease_ttl, on_event=on_event)
    if once:
        try:
            controller.tick()
        finally:
            controller.shutdown()  # leave no lease behind: another controller may go on at once
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        controller.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        controller.shutdown()
