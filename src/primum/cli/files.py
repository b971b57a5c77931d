"""`primum validate`, `schema` and `init`: the estate and release files."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from primum.cli.common import Output, OutputOption, handled, home
from primum.cli.output import console, print_json
from primum.core.model.errors import InputError

commands = typer.Typer()


class Schema(StrEnum):
    estate = "estate"
    release = "release"


@commands.command()
@handled
def validate(
    file: Annotated[Path, typer.Argument(help="an estate or release file")],
    estate: Annotated[str | None, typer.Option(help="estate to check a release against")] = None,
) -> None:
    """Check an estate or release file; exit 2 with every problem found."""
    from primum.app.plugins import load_plugins
    from primum.app.releases import resolve_estate
    from primum.core.model.validate import load_estate, load_release
    from primum.core.model.yamlfile import load_yaml

    load_plugins()
    doc = load_yaml(file)
    kind = doc.data.get("kind") if isinstance(doc.data, dict) else None
    if kind == "Estate":
        model = load_estate(file)
        console.print(f"[green]ok[/] {file}: estate {model.name}, {len(model.services)} services, "
                      f"environments {' -> '.join(model.environment_names())}")
    elif kind == "Release":
        est, est_path = resolve_estate(estate, home())
        loaded = load_release(file, est)
        console.print(f"[green]ok[/] {file}: release {loaded.release.id} {loaded.digest} "
                      f"({len(loaded.versions)} artifacts verified against estate {est_path})")
    else:
        raise InputError.single(str(file), f"unknown kind {kind!r}", "set `kind: Estate` or `kind: Release`",
                                path="kind", line=doc.line_of(("kind",)))


@commands.command()
@handled
def plugins(output: OutputOption = Output.table) -> None:
    """List the registered kinds of every plug-in type (targets, metric providers, probes) and what each
    target can do."""
    from primum.app.plugins import plugin_catalog

    catalog = plugin_catalog()
    if output is Output.json:
        print_json(catalog)
        return
    for kind, entries in catalog.items():
        console.print(f"[bold]{kind}[/]")
        for e in entries:
            console.print(f"  {e['type']}: {e['summary']}", highlight=False, soft_wrap=True)
            if "capabilities" in e:
                caps = ", ".join(e["capabilities"]) or "-"
                strategies = ", ".join(e["strategies"]) or "-"
                console.print(f"    capabilities: {caps}; strategies: {strategies}", highlight=False)


@commands.command()
@handled
def schema(which: Annotated[Schema, typer.Argument(help="estate or release")]) -> None:
    """Print the JSON Schema of estate or release files."""
    from primum.app.plugins import load_plugins
    from primum.core.model.estate import Estate
    from primum.core.model.release import Release

    load_plugins()
    model = Estate if which is Schema.estate else Release
    print_json(model.model_json_schema(by_alias=True))


@commands.command()
@handled
def init(
    directory: Annotated[Path, typer.Argument(help="where to write the example")] = Path("primum-example"),
    fast: Annotated[bool, typer.Option(help="shorter analysis windows")] = False,
) -> None:
    """Write the demo's estate, releases and artifacts as editable files."""
    from primum.demo.files import write_demo

    if directory.exists() and any(directory.iterdir()):
        raise InputError.single(str(directory), "directory is not empty", "choose a new or empty directory")
    files = write_demo(directory, fast=fast)
    console.print(f"wrote {files.estate}, {files.baseline.parent}/, {files.root / 'artifacts'}/ and "
                  f"{files.root / 'primum.env'} (settings), and a key for each fictional person in "
                  f"{files.root / '.primum' / 'people'}/ (enrolled in identities.yaml)\n"
                  f"next: primum up {files.estate}   (in another terminal)\n"
                  f"      primum release apply {files.baseline} --estate {files.estate}")


# ---------------------------------------------------------------- runtime

