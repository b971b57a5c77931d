"""`primum probe`: run a service's probe gates now, as the controller would (``app.gather.probe_now``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from primum.cli.common import EXIT_OK, EXIT_RELEASE_FAILED, EstateOption, Output, OutputOption, handled, home, primum
from primum.cli.output import console, print_json

commands = typer.Typer()


@commands.command()
@handled
def probe(
    service_name: Annotated[str, typer.Argument(metavar="SERVICE")],
    env: Annotated[str, typer.Option(help="the environment whose router, MLLP port and instances to probe")],
    gate: Annotated[list[str] | None, typer.Option(help="only this probe gate (repeatable)")] = None,
    preview: Annotated[bool, typer.Option(help="ask the router for the preview version")] = False,
    estate: EstateOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Run a service's probe gates now (HTTP, FHIR, MLLP, TCP, TLS); exit 0 only if all pass."""
    from primum.app.gather import probe_now
    from primum.app.releases import resolve_estate

    est, path = resolve_estate(estate, home())
    results = probe_now(est, path, primum().targets, service_name, env, gate or (), preview=preview)
    if output is Output.json:
        print_json([{"gate": name, **r.model_dump(mode="json")} for name, r in results])
    else:
        for name, r in results:
            mark = "[green]pass[/]" if r.ok else "[red]FAIL[/]"
            console.print(f"{mark} {escape(name)} ({r.probe} {escape(r.target)}): {escape(r.reason)}")
    raise typer.Exit(EXIT_OK if all(r.ok for _, r in results) else EXIT_RELEASE_FAILED)
