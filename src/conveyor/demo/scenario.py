"""``conveyor demo``: three apps flow through integration, staging and production as real processes.

The story, told by the engine's own events as they happen:

1. ``web``, ``api`` and ``search`` are released together. ``web`` and ``api`` share the conflict group
   ``edge``, so they never deploy to the same environment at once; ``search`` runs alongside.
2. A commit breaks ``api``'s health endpoint in staging only: it passes integration, fails staging, is
   blocked there, and production keeps the previous version. ``conveyor why api`` explains.
3. A fix flows through, lifts the block, and reaches production.
4. An operator rolls api back in production: the last good release before the fix returns, and the
   fix is vetoed there (never started there again automatically). ``conveyor why`` says so.
5. The final status, and where the database and logs are.

With ``--once`` every expectation is checked and the exit code says whether all held.
"""

from __future__ import annotations

import functools
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.rule import Rule
from sqlalchemy import func, select

from conveyor import views
from conveyor.cli.narrate import EventTail
from conveyor.cli.render import print_why, status_table
from conveyor.clock import utc_now
from conveyor.config import Config, load_config
from conveyor.demo.apps import free_ports, write_version
from conveyor.drivers.local import stop_all
from conveyor.engine import placements
from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.store.tables import Deployment, Event, Hold

APPS = {"web": ("frontend", ["edge"]), "api": ("platform", ["edge"]), "search": ("platform", [])}
ENVIRONMENTS = ("integration", "staging", "production")
STAGE_TIMEOUT = 45.0
RULE_WIDTH = 100  # columns at most for the line under each act's title


class DemoFailed(Exception):
    """An expectation of the story did not hold; the message says which."""


def write_config(root: Path) -> Path:
    ports = iter(free_ports(len(APPS) * len(ENVIRONMENTS)))
    lines = [
        "# Written by `conveyor demo`: three apps, real processes on loopback ports.",
        f"environments: [{', '.join(ENVIRONMENTS)}]",
        "teams:",
        "  frontend: {notify: []}",
        "  platform: {notify: []}",
        "groups:",
        "  edge: {description: web and api sit behind one router; never deploy both at once}",
        "defaults:",
        "  deploy:",
        "    driver: local",
        f"    start: [{sys.executable!r}, app.py]",
        "    ready_timeout: 20s",
        "  checks:",
        "    - name: health",
        "      type: http",
        '      url: "http://127.0.0.1:{port}/health"',
        "      expect_status: 200",
        "      count: 3",
        "      interval: 250ms",
        "      failure_limit: 2",
        "apps:",
    ]
    for name, (team, groups) in APPS.items():
        lines += [f"  {name}:", f"    repo: ./repos/{name}", f"    team: {team}", f"    groups: [{', '.join(groups)}]"]
        lines.append("    environments:")
        lines += [f"      {env}: {{vars: {{port: {next(ports)}}}}}" for env in ENVIRONMENTS]
    path = root / "conveyor.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Demo:
    def __init__(self, console: Console, root: Path) -> None:
        self.console, self.root = console, root
        for name in APPS:
            write_version(root / "repos" / name, name, "1", f"{name}: first version")
        self.config: Config = load_config(write_config(root))
        self.db = Database(self.config.database_url)
        upgrade(self.db)
        self.ops = Operations(self.config, self.db)
        self.stop = threading.Event()
        self.conductor = Conductor(self.config, self.db, concurrency=16, poll_interval=0.05, grace_seconds=5)
        self.tail = EventTail(self.db, from_start=True)
        self.threads = [
            threading.Thread(target=self.conductor.run, args=(self.stop,), name="conductor", daemon=True),
            threading.Thread(
                target=self.tail.follow, args=(console, self.stop),
                name="narrator", daemon=True,
            ),
        ]  # fmt: skip

    # -- helpers ----------------------------------------------------------------------------------

    def say(self, title: str) -> None:
        self.catch_up()
        # a rule spans the console's width, which is unbounded when the output is piped
        self.console.print(Rule(f"[bold]{title}[/]", align="left"), width=min(self.console.width, RULE_WIDTH))

    def catch_up(self, timeout: float = 2.0) -> None:
        """Let the narrator print every event so far, so the story reads in order."""
        with self.db.read() as s:
            newest = s.scalar(select(func.max(Event.id))) or 0
        deadline = time.monotonic() + timeout
        while self.tail.last_id < newest and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.1)

    def shell(self, command: str) -> None:
        self.console.print(f"[bold magenta]$ {command}[/]")

    def release(self, app: str) -> str:
        self.shell(f"conveyor release {app}")
        return self.ops.create_release(app, actor="demo").label

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = STAGE_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise DemoFailed(f"timed out after {timeout:.0f}s waiting for: {what}")
            time.sleep(0.1)

    def env_status(self, app: str, env: str) -> views.EnvStatus:
        return views.status(self.db, self.config, app)[0].environments[env]

    def live(self, app: str, env: str, label: str) -> bool:
        return self.env_status(app, env).live == label

    def answer(self, app: str, env: str) -> dict[str, Any]:
        port = self.config.app(app).environments[env].vars["port"]
        data: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).json()
        return data

    def intervals(self, app: str, env: str) -> list[tuple[float, float]]:
        with self.db.read() as s:
            rows = s.scalars(select(Deployment).where(Deployment.app == app, Deployment.environment == env))
            return [
                (d.started_at.timestamp(), d.finished_at.timestamp())
                for d in rows
                if d.started_at is not None and d.finished_at is not None
            ]

    def overlapped(self, a: str, b: str, env: str) -> bool:
        return any(s1 < e2 and s2 < e1 for s1, e1 in self.intervals(a, env) for s2, e2 in self.intervals(b, env))

    def open_blocks(self, app: str) -> list[Hold]:
        with self.db.read() as s:
            return list(s.scalars(select(Hold).where(Hold.app == app, Hold.lifted_at.is_(None))))

    # -- the story --------------------------------------------------------------------------------

    def act_one(self) -> None:
        self.say("1. Three apps released at once")
        labels = {app: self.release(app) for app in APPS}
        for app, label in labels.items():
            self.wait_for(f"{app} {label} live in production", functools.partial(self.live, app, "production", label))
        for env in ENVIRONMENTS:
            if self.overlapped("web", "api", env):
                raise DemoFailed(f"web and api (group edge) deployed to {env} at the same time")
        if not any(self.overlapped("search", other, env) for other in ("web", "api") for env in ENVIRONMENTS):
            raise DemoFailed("search never ran alongside web or api: deployments were not concurrent")
        self.console.print(
            "[green]✔ all three are live in production; web and api never deployed to the same environment "
            "at once, search ran alongside them[/]"
        )

    def act_two(self) -> str:
        self.say("2. A commit breaks api's health check, in staging only")
        before = self.env_status("api", "production").live
        write_version(self.root / "repos" / "api", "api", "2", "api: read config from the environment",
                      broken_in="staging")  # fmt: skip
        bad = self.release("api")
        self.wait_for("api blocked in staging", lambda: self.env_status("api", "staging").state == "failed")
        self.wait_for("a block on api", lambda: bool(self.open_blocks("api")))
        if not self.live("api", "integration", bad):
            raise DemoFailed(f"api {bad} should have passed integration before failing staging")
        if self.env_status("api", "production").live != before or self.answer("api", "production")["version"] != "1":
            raise DemoFailed("production should still run api version 1")
        self.catch_up()
        self.shell("conveyor why api")
        print_why(self.console, views.why(self.db, self.config, "api"))
        self.console.print(
            f"[green]✔ {bad} passed integration, failed staging, was blocked; production kept {before}[/]"
        )
        return bad

    def act_three(self, bad: str) -> str:
        self.say("3. A fix flows out and lifts the block")
        write_version(self.root / "repos" / "api", "api", "3", "api: fix the staging health check")
        fix = self.release("api")
        self.wait_for(f"api {fix} live in production", lambda: self.live("api", "production", fix))
        if self.open_blocks("api"):
            raise DemoFailed("the block on api should have lifted when the fix passed staging")
        if self.answer("api", "production")["version"] != "3":
            raise DemoFailed("production should answer with api version 3")
        self.console.print(f"[green]✔ {fix} passed staging, the block lifted, production runs the fix[/]")
        return fix

    def act_rollback(self, fix: str) -> None:
        self.say("4. An operator rolls api back in production")
        reason = f"slow queries since {fix}"
        self.shell(f'conveyor rollback api --env production --reason "{reason}"')
        result = self.ops.rollback("api", "production", reason, actor="demo")

        def restored() -> bool:
            st = self.env_status("api", "production")
            return st.state == "succeeded" and st.current == result.to and st.health == "healthy"

        self.wait_for(f"api {result.to} back in production", restored)
        if self.answer("api", "production")["version"] != "1":
            raise DemoFailed("production should answer with api version 1 after the rollback")
        self.catch_up()
        self.shell("conveyor why api production")
        print_why(self.console, views.why(self.db, self.config, "api", "production"))
        self.console.print(
            f"[green]✔ production runs api {result.to} again; {result.rolled_back_from} is vetoed there "
            "and will not be started there again on its own[/]"
        )

    def act_four(self, *, kept: bool) -> None:
        self.say("5. Where things stand")
        self.shell("conveyor status")
        self.console.print(status_table(views.status(self.db, self.config), self.config.environments))
        self.console.print(f"config:   {self.config.path}")
        self.console.print(f"database: {self.db.safe_url}")
        self.console.print(f"logs:     {self.config.state_dir / 'envs'}/<app>/<environment>/logs/")
        if kept:
            self.console.print(
                f"try:      conveyor why api -c {self.config.path}   (or status, history api, logs api --env staging)"
            )
        else:
            self.console.print("this folder is removed on exit; run `conveyor demo --keep DIR` to keep it and explore")

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)
        stopped = stop_all(self.config.state_dir)
        with self.db.write() as session:  # a kept folder's status then says nothing runs, which is true
            placements.stopped(session, None, None, utc_now())
        self.console.print(f"stopped {stopped} app process(es)")
        self.db.dispose()


def run_demo(console: Console, *, once: bool, keep: Path | None = None) -> int:
    root = keep.resolve() if keep else Path(tempfile.mkdtemp(prefix="conveyor-demo-"))
    if keep:
        if keep.exists() and any(keep.iterdir()):
            console.print(f"[red]error:[/] {keep} is not empty")
            return 1
        root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    demo = Demo(console, root)
    console.print(f"conveyor demo in {root}")
    code = 0
    try:
        demo.start()
        demo.act_one()
        bad = demo.act_two()
        fix = demo.act_three(bad)
        demo.act_rollback(fix)
        demo.act_four(kept=keep is not None or not once)
        console.print(f"[bold green]demo complete in {time.monotonic() - started:.1f}s[/]")
        if not once:
            _wait_for_interrupt(console)
    except DemoFailed as exc:
        console.print(f"[bold red]demo failed:[/] {exc}")
        code = 1
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        demo.close()
        if keep is None and once:
            shutil.rmtree(root, ignore_errors=True)
    return code


def _wait_for_interrupt(console: Console) -> None:
    console.print("conveyor keeps running: release again from another terminal, or press Ctrl-C to stop.")

    def on_term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    while True:
        time.sleep(3600)
