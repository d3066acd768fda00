"""Who is acting from the command line, and the table ``conveyor audit`` prints."""

from __future__ import annotations

import getpass
import os
from typing import Any

from rich.table import Table
from rich.text import Text

from conveyor.cli.render import one_line


def cli_actor() -> str:
    """``cli:<user>``: the operating-system user running the command, as recorded on its events."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (e.g. a container without a passwd entry)
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


def audit_table(actions: list[dict[str, Any]]) -> Table:
    table = Table(title="operator actions, newest first", title_justify="left")
    table.add_column("at", no_wrap=True)
    table.add_column("actor", overflow="fold")
    table.add_column("action", no_wrap=True, style="bold")
    table.add_column("app", overflow="fold")
    table.add_column("environment", overflow="fold")
    table.add_column("reason", overflow="fold")
    table.add_column("what", overflow="fold", style="dim")
    for a in actions:
        reason = Text(one_line(a["reason"])) if a["reason"] else Text("—", style="dim")
        table.add_row(
            a["at"][:19].replace("T", " "),
            a["actor"],
            a["action"],
            a["app"] or "—",
            a["environment"] or "—",
            reason,
            one_line(a["message"]),
        )
    return table
