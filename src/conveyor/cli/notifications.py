"""Deliveries as tables: ``conveyor notifications`` (one row per event sent to one notifier) and
``conveyor deliveries`` (one row per webhook GitHub sent to conveyor)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from conveyor.cli.render import age

STATE_STYLE = {"delivered": "green", "done": "green", "pending": "yellow", "ignored": "dim", "failed": "bold red"}


def notifications_table(rows: list[dict[str, Any]], *, failed_only: bool) -> Table:
    title = "failed notifications" if failed_only else "notifications"
    table = Table(title=f"{title}, newest first", title_justify="left")
    table.add_column("#", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("app", overflow="fold")
    table.add_column("notifier", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("tries", no_wrap=True, justify="right")
    table.add_column("last error", overflow="fold")
    for r in rows:
        where = " ".join(x for x in (r["app"], r["environment"], r["release"]) if x)
        state = Text(r["state"], style=STATE_STYLE.get(r["state"], ""))
        if r["delivered_at"]:
            state.append(f" {age(r['delivered_at'])}", style="dim")
        table.add_row(
            str(r["id"]), r["kind"], where or "—", r["notifier"], state, str(r["attempts"]), r["last_error"] or ""
        )
    return table


def github_deliveries_table(rows: list[dict[str, Any]]) -> Table | str:
    if not rows:
        return "no deliveries from GitHub (they come to POST /hooks/github once a github: section is set up)"
    table = Table(title="GitHub deliveries, newest first", title_justify="left")
    table.add_column("#", no_wrap=True)
    table.add_column("received", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("about", overflow="fold")
    table.add_column("state", no_wrap=True)
    table.add_column("note", overflow="fold")
    for r in rows:
        about = " ".join(x for x in (r["repository"], r["branch"], (r["sha"] or "")[:7]) if x)
        state = Text(r["state"], style=STATE_STYLE.get(r["state"], ""))
        if r["attempts"] > 1:
            state.append(f" ({r['attempts']} tries)", style="dim")
        table.add_row(str(r["id"]), age(r["received_at"]), r["event"], about or "—", state, r["note"] or "")
    return table
