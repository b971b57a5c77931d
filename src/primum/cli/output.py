"""Rendering for the CLI: blocks for people (readable at 80 columns and when piped), full tables with
``--wide``, JSON for programs (``--output json``, unchanged by either).

Rich's table is imported only by the ``--wide`` views: the default views are plain lines.
"""

from __future__ import annotations

import functools
import json
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.table import Table

    from primum.core.model.rollout import RolloutStatus

WIDE = 100_000  # --wide: lay tables out as wide as their content needs; nothing is cut or folded

console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

PHASE_STYLE = {
    "promoted": "green", "succeeded": "green", "skipped": "dim", "running": "cyan", "progressing": "cyan",
    "pending": "dim", "paused": "yellow", "rolled_back": "red", "rolling_back": "red", "failed": "bold red",
    "not_started": "dim",
}


def styled(phase: str) -> str:
    return f"[{PHASE_STYLE.get(phase, 'white')}]{phase}[/]"


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def event_line(rollout_id: str, kind: str, message: str, at: float | None = None) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(at or time.time()))
    style = {"analysis": "magenta", "rollback_started": "red", "rolled_back": "bold red", "promoted": "bold green",
             "paused": "yellow", "item_succeeded": "green", "action_failed": "red"}.get(kind, "white")
    return f"[dim]{stamp}[/] [bold]{escape(rollout_id)}[/] [{style}]{escape(message)}[/]"


def _table(title: str, columns: tuple[str, ...]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, no_wrap=True)
    return table


def print_wide(table: Table) -> None:
    """Print ``table`` as wide as its content: a terminal or pipe narrower than that scrolls, nothing is cut."""
    from rich.measure import Measurement

    needed = Measurement.get(console, console.options.update_width(WIDE), table).maximum
    narrow = console.width
    console.width = max(needed, narrow)
    try:
        console.print(table, crop=False)
    finally:
        console.width = narrow


def _item_detail(item: Any) -> str:
    detail = item.pause_reason or item.failure or item.message or ""
    if item.verdicts:
        last = item.verdicts[-1]
        detail = f"{detail} | last {last.kind} verdict: {last.result.value}: {last.reason}"
    return str(detail)


def status_view(status: RolloutStatus, *, wide: bool = False) -> None:
    """A release's items: one block each (``wide``: one table)."""
    if wide:
        print_wide(status_table(status))
        return
    console.print(f"[bold]{escape(status.release_id)}[/]  {styled(status.phase.value)}")
    for item in status.items:
        stable = item.stable.label if item.stable else "-"
        console.print(f"  {escape(item.env)}/{escape(item.service)}  {styled(item.phase.value)}  "
                      f"{escape(item.strategy)}  {escape(stable)} -> {escape(item.new.label or item.new.key)}",
                      soft_wrap=False)
        detail = _item_detail(item)
        if detail:
            console.print(f"    {escape(detail)}", soft_wrap=False)


def status_table(status: RolloutStatus) -> Table:
    table = _table(f"{status.release_id}  {styled(status.phase.value)}",
                   ("env", "service", "strategy", "from", "to", "state", "detail"))
    for item in status.items:
        table.add_row(item.env, item.service, item.strategy, item.stable.label if item.stable else "-",
                      item.new.label or item.new.key, styled(item.phase.value), escape(_item_detail(item)))
    return table


def history_view(rows: list[dict[str, Any]], *, wide: bool = False) -> None:
    """Releases: one line each and the reason under it (``wide``: one table)."""
    if wide:
        print_wide(history_table(rows))
        return
    for row in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
        console.print(f"[bold]{escape(row['id'])}[/]  {styled(row['state'])}  {created}  {row['digest'][:19]}",
                      soft_wrap=False)
        if row["reason"]:
            console.print(f"    {escape(row['reason'])}", soft_wrap=False)


def history_table(rows: list[dict[str, Any]]) -> Table:
    table = _table("releases", ("id", "digest", "state", "created", "reason"))
    for row in rows:
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["created_at"]))
        table.add_row(row["id"], row["digest"][:19], styled(row["state"]), created, escape(row["reason"] or ""))
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "NaN"
        return f"{value:.4g}"
    return str(value)


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())


OUTCOME_STYLE = {"Successful": "green", "Failed": "red", "Inconclusive": "yellow", "Error": "red"}


def analysis_list(rows: list[Any], *, wide: bool = False) -> None:
    """A release's measurements: one block each (``wide``: one table)."""
    if wide:
        print_wide(analysis_table(rows))
        return
    console.print("analyses (show one with `primum analysis show ID`)")
    for ev in rows:
        report = ev.data.get("report", {})
        outcome = report.get("outcome", "?")
        style = OUTCOME_STYLE.get(outcome, "white")
        console.print(f"[bold]{ev.id}[/]  {time.strftime('%H:%M:%S', time.localtime(ev.at))}  "
                      f"{escape(ev.env or '-')}/{escape(ev.service or '-')}  step {ev.data.get('step', '-')}  "
                      f"measurement {ev.data.get('measurement', '?')}/{ev.data.get('count', '?')}  "
                      f"[{style}]{outcome}[/]  score {_fmt(report.get('score'))}", soft_wrap=False)
        if report.get("reason"):
            console.print(f"    {escape(report['reason'])}", soft_wrap=False)


def analysis_table(rows: list[Any]) -> Table:
    table = _table("analyses (show one with `primum analysis show ID`)",
                   ("id", "when", "env", "service", "step", "measurement", "outcome", "score", "reason"))
    for ev in rows:
        report = ev.data.get("report", {})
        outcome = report.get("outcome", "?")
        style = OUTCOME_STYLE.get(outcome, "white")
        table.add_row(str(ev.id), time.strftime("%H:%M:%S", time.localtime(ev.at)), ev.env or "-", ev.service or "-",
                      str(ev.data.get("step", "-")), f"{ev.data.get('measurement', '?')}/{ev.data.get('count', '?')}",
                      f"[{style}]{outcome}[/]", _fmt(report.get("score")), escape(report.get("reason", "")))
    return table


def analysis_report(event: Any, *, wide: bool = False) -> None:
    """Print one measurement's report: every input, statistic, threshold and reason; one block per check
    (``wide``: the checks as one table, then their reasons and sources)."""
    report = event.data.get("report", {})
    outcome = report.get("outcome", "?")
    style = OUTCOME_STYLE.get(outcome, "white")
    say = functools.partial(console.print, soft_wrap=False)  # wrap at the terminal's width, never cut
    window = report.get("end", 0) - report.get("start", 0)
    say(f"[bold]analysis {event.id}[/]  release {escape(event.rollout_id)}  {escape(event.env or '')}/"
                  f"{escape(event.service or '')}  step {event.data.get('step', '?')}  measurement "
                  f"{event.data.get('measurement', '?')}/{event.data.get('count', '?')}")
    say(f"outcome: [{style}]{outcome}[/]  score: {_fmt(report.get('score'))} (pass >= "
                  f"{_fmt(report.get('pass_score'))}, marginal >= {_fmt(report.get('marginal_score'))})  mode: "
                  f"{report.get('mode')}")
    say(f"window: {window:.1f}s from {time.strftime('%H:%M:%S', time.localtime(report.get('start', 0)))}"
                  f"  baseline {report.get('baseline_version') or '-'}  canary {report.get('canary_version')}")
    say(f"reason: {escape(report.get('reason', ''))}")
    groups = report.get("groups") or []
    if groups:
        say("groups: " + "; ".join(f"{g['group']} {g['score']:.0f} ({g['passed']}/{g['judged']} passed, "
                                             f"weight {g['weight']:.0f}%)" for g in groups))
    results = report.get("results", [])
    if wide:
        print_wide(checks_table(results))
        console.print("[bold]reasons and sources[/]")
        for r in results:
            where = f" [{r['slice']}]" if r.get("slice") else ""
            console.print(f"- {escape(r['metric'])}{escape(where)} {escape(r['check'])}: {escape(r['reason'])}")
            _print_sources(r)
        return
    console.print(f"[bold]checks, their reasons and sources[/] ({len(results)}; `--wide` for one table)")
    for r in results:
        cls = r["classification"]
        flags = (" critical" if r.get("critical") else "") + (" muted" if r.get("muted") else "")
        console.print(f"- [bold]{escape(r['metric'])}[/]{escape(flags)}  slice {escape(r.get('slice') or 'all')}  "
                      f"{escape(r['check'])}  [{_class_style(cls)}]{cls}[/]  n {r.get('baseline_n', 0)}/"
                      f"{r.get('canary_n', 0)}", soft_wrap=False)
        for label, value in (("baseline", _pairs(r.get("baseline", {}))), ("canary", _pairs(r.get("canary", {}))),
                             ("statistics", _pairs(r.get("statistics", {}))), ("effect", _effect(r)),
                             ("thresholds", _pairs(r.get("thresholds", {}))), ("reason", r["reason"])):
            if value and value != "-":
                console.print(f"    {label}: {escape(value)}", soft_wrap=False)
        _print_sources(r)


def _class_style(cls: str) -> str:
    return "green" if cls == "Pass" else ("dim" if cls == "Nodata" else "red")


def _effect(r: dict[str, Any]) -> str:
    return "-" if r.get("effect") is None else f"{_fmt(r['effect'])} {r.get('effect_measure') or ''}".strip()


def _print_sources(r: dict[str, Any]) -> None:
    for role, source in (r.get("source") or {}).items():
        if source:
            console.print(f"    {role}: {escape(source)}", style="dim", soft_wrap=False)


def checks_table(results: list[dict[str, Any]]) -> Table:
    table = _table("checks", ("metric", "slice", "check", "class", "n base/canary", "baseline", "canary",
                              "statistics", "effect", "thresholds"))
    table.show_lines = True
    for r in results:
        cls = r["classification"]
        flags = (" critical" if r.get("critical") else "") + (" muted" if r.get("muted") else "")
        table.add_row(escape(r["metric"] + flags), escape(r.get("slice") or "all"), escape(r["check"]),
                      f"[{_class_style(cls)}]{cls}[/]", f"{r.get('baseline_n', 0)}/{r.get('canary_n', 0)}",
                      escape(_pairs(r.get("baseline", {}))), escape(_pairs(r.get("canary", {}))),
                      escape(_pairs(r.get("statistics", {}))), escape(_effect(r)),
                      escape(_pairs(r.get("thresholds", {}))))
    return table
