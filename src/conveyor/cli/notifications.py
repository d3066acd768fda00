"""The table ``conveyor notifications`` prints: one row per delivery of one event to one notifier."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from conveyor.cli.render import age

STATE_STYLE = {"delivered": "green", "pending": "yellow", "failed": "bold red"}


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
