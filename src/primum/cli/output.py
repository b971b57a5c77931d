"""Rendering for the CLI: Rich tables for people, JSON for machines."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from primum.core.model.rollout import RolloutStatus

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


def status_table(status: RolloutStatus) -> Table:
    table = Table(title=f"{status.release_id}  {styled(status.phase.value)}", title_justify="left")
    for col in ("env", "service", "strategy", "from", "to", "state", "detail"):
        table.add_column(col)
    for item in status.items:
        detail = item.pause_reason or item.failure or item.message
        if item.verdicts:
            last = item.verdicts[-1]
            detail = f"{detail} | last {last.kind} verdict: {last.result.value}: {last.reason}"
        table.add_row(item.env, item.service, item.strategy, item.stable.label if item.stable else "-",
                      item.new.label or item.new.key, styled(item.phase.value), escape(detail or ""))
    return table


def history_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="releases", title_justify="left")
    for col in ("id", "digest", "state", "created", "reason"):
        table.add_column(col)
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


def analysis_list(rows: list[Any]) -> Table:
    table = Table(title="analyses (show one with `primum analysis show ID`)", title_justify="left")
    for col in ("id", "when", "env", "service", "step", "measurement", "outcome", "score", "reason"):
        table.add_column(col)
    for ev in rows:
        report = ev.data.get("report", {})
        outcome = report.get("outcome", "?")
        style = {"Successful": "green", "Failed": "red", "Inconclusive": "yellow", "Error": "red"}.get(outcome, "white")
        table.add_row(str(ev.id), time.strftime("%H:%M:%S", time.localtime(ev.at)), ev.env or "-", ev.service or "-",
                      str(ev.data.get("step", "-")), f"{ev.data.get('measurement', '?')}/{ev.data.get('count', '?')}",
                      f"[{style}]{outcome}[/]", _fmt(report.get("score")), escape(report.get("reason", "")))
    return table


def analysis_report(event: Any) -> None:
    """Print one measurement's report: every input, statistic, threshold and reason."""
    report = event.data.get("report", {})
    outcome = report.get("outcome", "?")
    style = {"Successful": "green", "Failed": "red", "Inconclusive": "yellow", "Error": "red"}.get(outcome, "white")
    window = report.get("end", 0) - report.get("start", 0)
    console.print(f"[bold]analysis {event.id}[/]  release {escape(event.rollout_id)}  {escape(event.env or '')}/"
                  f"{escape(event.service or '')}  step {event.data.get('step', '?')}  measurement "
                  f"{event.data.get('measurement', '?')}/{event.data.get('count', '?')}")
    console.print(f"outcome: [{style}]{outcome}[/]  score: {_fmt(report.get('score'))} (pass >= "
                  f"{_fmt(report.get('pass_score'))}, marginal >= {_fmt(report.get('marginal_score'))})  mode: "
                  f"{report.get('mode')}")
    console.print(f"window: {window:.1f}s from {time.strftime('%H:%M:%S', time.localtime(report.get('start', 0)))}"
                  f"  baseline {report.get('baseline_version') or '-'}  canary {report.get('canary_version')}")
    console.print(f"reason: {escape(report.get('reason', ''))}")
    groups = report.get("groups") or []
    if groups:
        console.print("groups: " + "; ".join(f"{g['group']} {g['score']:.0f} ({g['passed']}/{g['judged']} passed, "
                                             f"weight {g['weight']:.0f}%)" for g in groups))
    table = Table(title="checks", title_justify="left", show_lines=True)
    for col in ("metric", "slice", "check", "class", "n base/canary", "baseline", "canary", "statistics",
                "effect", "thresholds"):
        table.add_column(col)
    for r in report.get("results", []):
        cls = r["classification"]
        cstyle = "green" if cls == "Pass" else ("dim" if cls == "Nodata" else "red")
        flags = (" critical" if r.get("critical") else "") + (" muted" if r.get("muted") else "")
        effect = "-" if r.get("effect") is None else f"{_fmt(r['effect'])} {r.get('effect_measure') or ''}"
        table.add_row(escape(r["metric"] + flags), escape(r.get("slice") or "all"), escape(r["check"]),
                      f"[{cstyle}]{cls}[/]", f"{r.get('baseline_n', 0)}/{r.get('canary_n', 0)}",
                      escape(_pairs(r.get("baseline", {}))), escape(_pairs(r.get("canary", {}))),
                      escape(_pairs(r.get("statistics", {}))), escape(effect), escape(_pairs(r.get("thresholds", {}))))
    console.print(table)
    console.print("[bold]reasons and sources[/]")
    for r in report.get("results", []):
        where = f" [{r['slice']}]" if r.get("slice") else ""
        console.print(f"- {escape(r['metric'])}{escape(where)} {escape(r['check'])}: {escape(r['reason'])}")
        for role, source in (r.get("source") or {}).items():
            if source:
                console.print(f"    {role}: {escape(source)}", style="dim")
