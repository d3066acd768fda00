"""Narration: print the audit trail as it grows, one line per Event (serve, worker, the demo)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from rich.console import Console
from rich.text import Text
from sqlalchemy import select

from conveyor.store.database import Database
from conveyor.store.tables import Event

QUIET_KINDS = frozenset({"step.started", "step.finished", "deployment.created"})

STYLE = {
    "release.created": "bold blue",
    "deployment.started": "cyan",
    "deployment.verifying": "cyan",
    "deployment.succeeded": "green",
    "deployment.failed": "bold red",
    "deployment.superseded": "dim",
    "deployment.waiting": "yellow",
    "hold.created": "bold red",
    "hold.lifted": "bold green",
    "promotion.waiting": "magenta",
    "step.requeued": "yellow",
}


def format_event(e: Event) -> Text:
    where = " ".join(x for x in (e.app, e.environment and f"→ {e.environment}") if x)
    text = Text(f"{e.at:%H:%M:%S} ", style="dim")
    text.append(f"{e.kind:<22}", style=STYLE.get(e.kind, ""))
    text.append(f" {where:<26} ", style="bold")
    text.append(e.message)
    return text


class EventTail:
    """Follows the events table from where it stands now (or from the start)."""

    def __init__(self, db: Database, *, from_start: bool = False, verbose: bool = False) -> None:
        self.db = db
        self.verbose = verbose
        self.last_id = 0 if from_start else self._max_id()

    def _max_id(self) -> int:
        with self.db.read() as session:
            return session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0

    def poll(self) -> list[Event]:
        with self.db.read() as session:
            events = list(session.scalars(select(Event).where(Event.id > self.last_id).order_by(Event.id)))
        if events:
            self.last_id = events[-1].id
        return [e for e in events if self.verbose or e.kind not in QUIET_KINDS]

    def follow(
        self,
        console: Console,
        stop: threading.Event,
        interval: float = 0.3,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        while not stop.is_set():
            for e in self.poll():
                console.print(format_event(e))
                if on_event is not None:
                    on_event(e)
            stop.wait(interval)
        for e in self.poll():
            console.print(format_event(e))
