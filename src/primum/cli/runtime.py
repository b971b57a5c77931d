"""`primum up`, `down` and `controller`: the local runtime and the reconcile loop (``app.local_runtime``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from primum.cli.common import handled, home, long_running, primum
from primum.cli.output import console, event_line

commands = typer.Typer()


def _print_event(rollout_id: str, event: Any) -> None:
    console.print(event_line(rollout_id, event.kind, event.message))


@commands.command()
@handled
def up(
    estate_file: Annotated[Path, typer.Argument(metavar="ESTATE", help="the estate to run")],
    lease_ttl: Annotated[float, typer.Option(help="controller lease time in seconds")] = 10.0,
) -> None:
    """Start the local runtime (routers, services, synthetic traffic) and the controller, in the foreground."""
    from primum.app.local_runtime import RouterAddress, run_up

    long_running()

    def ready(estate: str, routers: list[RouterAddress]) -> None:
        console.print(f"[bold]primum up[/]: estate {estate} runs; routers:")
        for r in routers:
            extra = f" (admin {r.admin}, metrics {r.metrics})" if r.admin else ""
            console.print(f"  {r.env}/{r.service}: {r.url}{extra}")
        console.print("controller running; Ctrl-C (or `primum down`) stops everything")

    run_up(primum(), estate_file, lease_ttl=lease_ttl, on_ready=ready, on_event=_print_event,
           on_stopping=lambda: console.print("stopping the runtime ..."),
           on_stopped=lambda: console.print("stopped; no process left behind"))


@commands.command()
@handled
def down() -> None:
    """Stop `primum up` and every process of the local runtime."""
    from primum.app.local_runtime import stop_all

    console.print(f"stopped {stop_all(home())} runtime(s); no process left behind")


@commands.command("controller")
@handled
def controller_cmd(
    once: Annotated[bool, typer.Option(help="run one pass and exit")] = False,
    lease_ttl: Annotated[float, typer.Option(help="lease time in seconds")] = 10.0,
) -> None:
    """Run the reconcile loop (several may run against one PostgreSQL database)."""
    from primum.app.local_runtime import run_controller

    if not once:
        long_running()

    run_controller(primum(), once=once, lease_ttl=lease_ttl, on_event=_print_event)
