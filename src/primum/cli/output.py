"""Rendering for the CLI: Rich tables for people, JSON for machines."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from primum.model.rollout import RolloutStatus

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

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
            detail = f"{detail} | last verdict: {item.verdicts[-1].result.value}: {item.verdicts[-1].reason}"
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
