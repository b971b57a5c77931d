"""`primum analysis list` and `analysis show`: the analysis behind each verdict (``app.releases``)."""

from __future__ import annotations

from typing import Annotated

import typer

from primum.cli.common import Output, OutputOption, WideOption, handled, primum
from primum.cli.output import console, print_json

analysis_app = typer.Typer(no_args_is_help=True, help="Show the analysis behind each verdict.")


@analysis_app.command("list")
@handled
def analysis_list_cmd(
    release_id: Annotated[str, typer.Argument(metavar="RELEASE")],
    output: OutputOption = Output.table,
    wide: WideOption = False,
) -> None:
    """List a release's measurements with their ids, outcomes and reasons."""
    from primum.cli.output import analysis_list

    rows = primum().releases.analyses(release_id)
    if output is Output.json:
        print_json([{"id": e.id, "at": e.at, "env": e.env, "service": e.service, **e.data} for e in rows])
    elif not rows:
        console.print(f"release {release_id} has no analysis yet")
    else:
        analysis_list(rows, wide=wide)


@analysis_app.command("show")
@handled
def analysis_show(
    ref: Annotated[str, typer.Argument(metavar="ID", help="an analysis id, or a release id for its latest")],
    output: OutputOption = Output.table,
    wide: WideOption = False,
) -> None:
    """Explain one verdict: sources, sample sizes, statistics, effects, thresholds and reasons."""
    from primum.cli.output import analysis_report

    event = primum().releases.analysis(ref)
    if output is Output.json:
        print_json({"id": event.id, "release": event.rollout_id, "at": event.at, "env": event.env,
                    "service": event.service, **event.data})
    else:
        analysis_report(event, wide=wide)
