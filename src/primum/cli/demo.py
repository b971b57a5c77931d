"""`primum demo`: the fictional hospital (``primum.demo``), printed through this front end's output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from primum.cli.common import handled, long_running

commands = typer.Typer()


@commands.command()
@handled
def demo(
    fast: Annotated[bool, typer.Option(help="shorter analysis windows (the judgement stays real)")] = False,
    keep: Annotated[Path | None, typer.Option(help="keep this run's state here instead of the last demo's "
                                              "directory ($XDG_STATE_HOME/primum/last-demo)")] = None,
) -> None:
    """Run a fictional hospital through a bad release (rolled back) and a good one (promoted)."""
    from primum.cli import output
    from primum.demo.run import run_demo

    long_running()

    raise typer.Exit(run_demo(output, fast=fast, keep=keep))
