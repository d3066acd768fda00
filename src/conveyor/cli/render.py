"""Rich renderings of the read models: the status table, history and the answer to ``why``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from conveyor.views import AppStatus, EnvStatus

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

HEALTH_STYLE = {
    "healthy": "green",
    "failing": "bold red",
    "checking": "cyan",
    "unknown": "yellow",
    "stopped": "bold red",
}


def age(iso: str | None, now: datetime | None = None) -> str:
    if not iso:
        return ""
    seconds = int(((now or datetime.now(UTC)) - datetime.fromisoformat(iso)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def status_from_json(apps: list[dict[str, Any]]) -> list[AppStatus]:
    """The read model back from ``status --json`` (or the API's ``/api/apps``), for the table."""
    known = set(EnvStatus.__dataclass_fields__)
    return [
        AppStatus(
            name=a["name"],
            team=a["team"],
            tier=a["tier"],
            groups=list(a["groups"]),
            environments={
                env: EnvStatus(**{k: v for k, v in st.items() if k in known}) for env, st in a["environments"].items()
            },
            holds=list(a.get("holds", [])),
            candidates=list(a.get("candidates", [])),
        )
        for a in apps
    ]


def status_table(apps: list[AppStatus], environments: tuple[str, ...]) -> Table:
    table = Table(title="conveyor status", title_justify="left", expand=False)
    table.add_column("app", style="bold")
    table.add_column("tier")
    for env in environments:
        table.add_column(env)
    for app in apps:
        tier = Text(app.tier, style="magenta" if app.tier == "manual" else "")
        name = Text(app.name, style="bold")
        for candidate in app.candidates[:1]:
            name.append(f"\n⏳ {candidate['sha'][:7]} {candidate['summary']}", style="yellow")
        cells: list[Text | str] = [name, tier]
        for env in environments:
            cells.append(_cell(app, env))
        table.add_row(*cells)
    return table


OBSTACLE_MARK = {"window": "🕘", "freeze": "❄", "stop": "🛑"}
OBSTACLE_WORD = {"block": "blocked", "veto": "vetoed", "stop": "line stopped", "freeze": "frozen", "window": "closed"}


def stop_banners(stops: list[dict[str, Any]]) -> list[Text]:
    """One line per stop-the-line in force, shown above the status table."""
    return [
        Text(
            f"🛑 LINE STOPPED in {h['environment']} since {h['since'][:16].replace('T', ' ')} UTC by {h['actor']}: "
            f"{one_line(h['reason'])} (lift: {h['lift']})",
            style="bold red",
        )
        for h in stops
    ]


def _cell(app: AppStatus, env: str) -> Text:
    st = app.environments[env]
    if st.state is None:
        if st.obstacles:
            kind = st.obstacles[0]["kind"]
            text = Text(f"— {OBSTACLE_MARK.get(kind, '⛔')} {OBSTACLE_WORD.get(kind, kind)}", style="red")
        else:
            text = Text("—", style="dim")
        if st.awaiting_promotion:
            text.append(f"\n⏸ {st.awaiting_promotion} awaits promote", style="magenta")
        return text
    text = Text()
    text.append(st.release or "?", style="bold")
    text.append(" ")
    text.append(st.state, style=STATE_STYLE.get(st.state, ""))
    text.append(f" {age(st.since)}", style="dim")
    if st.health == "stopped":
        text.append("\nruns: nothing", style="bold red")
        text.append(f" ({st.current} stopped)", style="dim")
    elif st.current and (st.current != st.release or st.health != "healthy"):
        text.append(f"\nruns: {st.current} ", style="bold")
        text.append(st.health or "unknown", style=HEALTH_STYLE.get(st.health or "", ""))
    vetoed = [h["release"] for h in app.holds if h["kind"] == "veto" and h["environment"] == env]
    if st.obstacles and st.state not in ("deploying", "verifying", "baking"):
        kind = st.obstacles[0]["kind"]
        text.append(f"\n{OBSTACLE_MARK.get(kind, '⛔')} {OBSTACLE_WORD.get(kind, kind)}", style="bold red")
    elif st.state == "waiting":
        text.append("\n⏳ waiting", style="yellow")
    if vetoed:
        text.append(f"\nvetoed: {', '.join(vetoed)}", style="red")
    if st.awaiting_promotion:
        text.append(f"\n⏸ {st.awaiting_promotion} awaits promote", style="magenta")
    return text


def print_why(console: Console, answer: dict[str, Any]) -> None:
    console.print(Text(f"{answer['app']} (tier {answer['tier']})", style="bold"))
    polling = answer.get("polling")
    if polling:
        console.print(Text(f"  {polling['summary']}", style="red" if polling["failing_since"] else "dim"))
    for env, info in answer["environments"].items():
        line = Text(f"  {env}: ", style="bold")
        state = info["state"] or "nothing yet"
        line.append(f"[{state}] ", style=STATE_STYLE.get(info["state"] or "", "dim"))
        line.append(one_line(info["explanation"]))
        console.print(line)
        step = info.get("failed_step")
        if step and step["measurements"]:
            for m in step["measurements"][-3:]:
                console.print(Text(f"      {m['phase']}: {m['message']}", style="dim"))
        if step:
            console.print(Text(f"      its log: conveyor logs {answer['app']} --env {env}", style="dim"))
    candidate = answer.get("candidate")
    if candidate and candidate["state"] != "released":
        line = Text("  github: ", style="bold")
        line.append(f"{candidate['sha'][:7]} {candidate['state'].replace('_', ' ')}: {candidate['summary']}")
        console.print(line)
    push = answer.get("push")
    if push:
        line = Text("  github: ", style="bold")
        line.append(push["summary"], style="yellow")
        line.append(f" (conveyor deliveries --app {answer['app']})", style="dim")
        console.print(line)
    for hold in answer["holds"]:
        scope = f"{hold['app'] or 'every app'} in {hold['environment'] or 'every environment'}"
        until = f" until {hold['until'][:16].replace('T', ' ')}" if hold["until"] else ""
        console.print(
            Text(
                f"  hold #{hold['id']} ({hold['kind']}, {scope}) by {hold['actor']} since "
                f"{hold['since'][:16].replace('T', ' ')}{until}: {one_line(hold['reason'])} — lift: {hold['lift']}",
                style="red",
            )
        )


def history_table(app: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"history of {app}", title_justify="left")
    for col in ("#", "release", "environment", "state", "when", "by", "changes", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["deployment_id"]),
            r["release"],
            r["environment"],
            Text(r["state"], style=STATE_STYLE.get(r["state"], "")),
            _when(r),
            r["created_by"],
            changes(r),
            r["summary"],
        )
    return table


def _when(row: dict[str, Any]) -> str:
    """How long ago a deployment finished; one still open says what it last did (started, queued)."""
    if row["finished_at"]:
        return age(row["finished_at"])
    if row["started_at"]:
        return f"started {age(row['started_at'])}"
    return f"queued {age(row['queued_at'])}"


def changes(row: dict[str, Any]) -> str:
    """Who wrote a release and which pull requests it brings: "@a-user, A User · #7 #9"."""
    authors = ", ".join(f"@{a['login']}" if a.get("login") else a.get("name") or "?" for a in row.get("authors", []))
    pulls = " ".join(f"#{p['number']}" for p in row.get("pull_requests", []))
    return " · ".join(part for part in (authors, pulls) if part)


def holds_lines(rows: list[dict[str, Any]]) -> list[Text]:
    """One line per hold in force: what, where, since when and until when, by whom, why, how to lift it."""
    if not rows:
        return [Text("no holds in force")]
    lines = []
    for h in rows:
        scope = f"{h['app'] or 'every app'} in {h['environment'] or 'every environment'}"
        release = f" ({h['release']})" if h.get("release") else ""
        until = f" until {h['until'][:16].replace('T', ' ')} UTC" if h["until"] else ""
        since = (h["since"] or "")[:16].replace("T", " ")
        lines.append(
            Text(
                f"#{h['id']} {h['kind']} {scope}{release} since {since} UTC{until} by {h['actor']}: "
                f"{one_line(h['reason'])} — lift: {h['lift']}"
            )
        )
    return lines


_BREAKS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def one_line(text: str) -> str:
    """``text`` on one line: a reason typed with line breaks (or other control characters) must not read as
    another row of a listing, so each run of them shows as a visible ``⏎``."""
    return _BREAKS.sub(" ⏎ ", text)


def error_issues_table(answer: dict[str, Any]) -> Table | str:
    """``conveyor errors``: one row per issue, most events first; a sentence when there is none."""
    where = f" in {answer['environment']}" if answer.get("environment") else ""
    since = _minute(answer["since"])
    if not answer["issues"]:
        app = answer["app"]
        return f"no errors of {app}{where} since {since} UTC (the DSN to send them: conveyor dsn {app} --env ENV)"
    table = Table(title=f"errors of {answer['app']}{where} since {since} UTC", title_justify="left")
    for col in ("#", "environment", "events", "total", "first seen", "last seen", "introduced in", "issue"):
        table.add_column(col, overflow="fold")
    for issue in answer["issues"]:
        table.add_row(
            str(issue["id"]),
            issue["environment"],
            str(issue["events"]),
            str(issue["total_events"]),
            age(issue["first_seen"]),
            age(issue["last_seen"]),
            issue["first_release"] or "",
            Text(
                f"{issue['title']}\n{issue['culprit']}".strip(), style="bold red" if issue["level"] == "fatal" else ""
            ),
        )
    return table


def _minute(moment: str) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM`` (UTC), as the other tables show times."""
    return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
