"""``conveyor logs``: one deployment's steps, their attempts and logs, printed once or followed to the end.

The answer printed is :func:`conveyor.views.logs` (or the same JSON from ``GET /api/apps/APP/logs``).
:class:`LogPrinter` remembers what it has printed, so following a deployment is asking again every
half second and printing only what is new: a step's header when it first appears, its log lines as
they grow, its attempts and outcome once it has ended, and the deployment's end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from conveyor.cli.render import STATE_STYLE
from conveyor.domain.model import DeploymentState, StepState

FOLLOW_INTERVAL = 0.5  # seconds between two reads while following


def deployment_ended(answer: dict[str, Any]) -> bool:
    return DeploymentState(answer["deployment"]["state"]).terminal


class LogPrinter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.headed = False
        self.lines_shown: dict[int, int] = {}  # step id -> log lines printed
        self.closed: set[int] = set()  # steps whose attempts and outcome are printed
        self.ended = False

    def show(self, answer: dict[str, Any], *, final: bool) -> None:
        """Print what is new in ``answer``; ``final`` closes every step, ended or not (a one-off read)."""
        d = answer["deployment"]
        if not self.headed:
            self.headed = True
            self.console.print(
                Text(
                    f"deployment #{d['id']} of {answer['app']} {d['release']} ({d['sha'][:12]}) to "
                    f"{d['environment']}, queued by {d['created_by']}",
                    style="bold",
                )
            )
        for step in answer["steps"]:
            self._step(step, final=final)
        if (final or deployment_ended(answer)) and not self.ended:
            self.ended = True
            line = Text(f"deployment #{d['id']}: ")
            line.append(d["state"], style=STATE_STYLE.get(d["state"], ""))
            if d["summary"]:
                line.append(f": {d['summary']}")
            self.console.print(line)

    def _step(self, step: dict[str, Any], *, final: bool) -> None:
        sid = step["id"]
        if sid not in self.lines_shown:
            self.lines_shown[sid] = 0
            title = step["kind"] if step["name"] == step["kind"] else f"{step['kind']} {step['name']!r}"
            self.console.print(Text(f"step {title}", style="bold cyan"))
        lines = step["log"].splitlines()
        for line in lines[self.lines_shown[sid] :]:
            self.console.print(Text(f"  | {line}"))
        self.lines_shown[sid] = len(lines)
        if sid in self.closed or not (final or StepState(step["state"]).terminal):
            return
        self.closed.add(sid)
        for a in step["attempts"]:
            span = f"{_clock(a['started_at'])} → {_clock(a['finished_at'])}" if a["finished_at"] else "running"
            self.console.print(Text(f"  attempt {a['attempt']} by {a['owner']}: {a['outcome']} ({span})", style="dim"))
        end = Text("  ")
        end.append(step["state"], style=STATE_STYLE.get(step["state"], ""))
        if step["outcome"] and step["outcome"] != step["state"]:  # not "cancelled: cancelled"
            end.append(f": {step['outcome']}")
        self.console.print(end)


def follow(
    fetch: Callable[[], dict[str, Any]],
    printer: LogPrinter,
    stop: threading.Event,
    interval: float = FOLLOW_INTERVAL,
) -> None:
    """Print ``fetch()`` as it grows until its deployment has ended or ``stop`` is set."""
    while not stop.is_set():
        answer = fetch()
        ended = deployment_ended(answer)
        printer.show(answer, final=ended)
        if ended:
            return
        stop.wait(interval)


def _clock(iso: str | None) -> str:
    return iso[11:19] if iso else "?"
