"""Rich renderings of the read models: the status table, history and the answer to ``why``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from conveyor.views import AppStatus

STATE_STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "deploying": "cyan",
    "verifying": "cyan",
    "pending": "yellow",
    "waiting": "yellow",
    "superseded": "dim",
    "cancelled": "dim",
    "baking": "cyan",
}

HEALTH_STYLE = {"healthy": "green", "failing": "bold red", "checking": "cyan", "unknown": "yellow"}


def age(iso: str | None, now: datetime | None = None) -> str:
    if not iso:
        return ""
    seconds = int(((now or datetime.now(UTC)) - datetime.fromisoformat(iso)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def status_table(apps: list[AppStatus], environments: tuple[str, ...]) -> Table:
    table = Table(title="conveyor status", title_justify="left", expand=False)
    table.add_column("app", style="bold")
    table.add_column("tier")
    for env in environments:
        table.add_column(env)
    for app in apps:
        tier = Text(app.tier, style="magenta" if app.tier == "manual" else "")
        cells: list[Text | str] = [app.name, tier]
        for env in environments:
            cells.append(_cell(app, env))
        table.add_row(*cells)
    return table


def _cell(app: AppStatus, env: str) -> Text:
    st = app.environments[env]
    if st.state is None:
        return Text("—", style="dim")
    text = Text()
    text.append(st.release or "?", style="bold")
    text.append(" ")
    text.append(st.state, style=STATE_STYLE.get(st.state, ""))
    text.append(f" {age(st.since)}", style="dim")
    if st.current and (st.current != st.release or st.health != "healthy"):
        text.append(f"\nruns: {st.current} ", style="bold")
        text.append(st.health or "unknown", style=HEALTH_STYLE.get(st.health or "", ""))
    vetoed = [h["release"] for h in app.holds if h["kind"] == "veto" and h["environment"] == env]
    if any(h["environment"] in (env, None) and h["kind"] != "veto" for h in app.holds):
        text.append("\n⛔ blocked", style="bold red")
    elif st.state == "waiting":
        text.append("\n⏳ waiting", style="yellow")
    if vetoed:
        text.append(f"\nvetoed: {', '.join(vetoed)}", style="red")
    return text


def print_why(console: Console, answer: dict[str, Any]) -> None:
    console.print(Text(f"{answer['app']} (tier {answer['tier']})", style="bold"))
    for env, info in answer["environments"].items():
        line = Text(f"  {env}: ", style="bold")
        state = info["state"] or "nothing yet"
        line.append(f"[{state}] ", style=STATE_STYLE.get(info["state"] or "", "dim"))
        line.append(info["explanation"])
        console.print(line)
        step = info.get("failed_step")
        if step and step["measurements"]:
            for m in step["measurements"][-3:]:
                console.print(Text(f"      {m['phase']}: {m['message']}", style="dim"))
    for hold in answer["holds"]:
        console.print(
            Text(
                f"  hold #{hold['id']} ({hold['kind']}, {hold['environment'] or 'all environments'}) "
                f"by {hold['actor']} since {hold['since'][:19]}: {hold['reason']}",
                style="red",
            )
        )


def history_table(app: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"history of {app}", title_justify="left")
    for col in ("#", "release", "environment", "state", "finished", "by", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["deployment_id"]),
            r["release"],
            r["environment"],
            Text(r["state"], style=STATE_STYLE.get(r["state"], "")),
            age(r["finished_at"] or r["started_at"] or r["queued_at"]),
            r["created_by"],
            r["summary"],
        )
    return table
