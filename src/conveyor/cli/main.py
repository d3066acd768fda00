"""The ``conveyor`` command line. Every command takes ``-c/--config`` (default ./conveyor.yaml)."""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from conveyor import __version__, views
from conveyor.cli.context import Opened, open_project
from conveyor.cli.errors import err, fail, friendly_errors
from conveyor.cli.narrate import EventTail
from conveyor.cli.render import history_table, print_why, status_table
from conveyor.config import STARTER_CONFIG, load_config
from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.migrate import upgrade

out = Console(highlight=False, soft_wrap=True)

config_option = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("conveyor.yaml"),
    show_default=True,
    help="Path of conveyor.yaml.",
)


def _json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(__version__, prog_name="conveyor")
def cli(debug: bool) -> None:
    """conveyor: merged changes flow through your environments, checked, with every decision explained."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.command()
@config_option
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(config_path: Path, force: bool) -> None:
    """Write a commented starter conveyor.yaml."""
    if config_path.exists() and not force:
        fail(f"{config_path} already exists (use --force to overwrite it)")
    config_path.write_text(STARTER_CONFIG)
    out.print(f"wrote {config_path}; edit it, then run: conveyor check -c {config_path}")


@cli.command()
@config_option
@friendly_errors
def check(config_path: Path) -> None:
    """Validate the configuration; exit 2 listing every problem, or 0 with a summary."""
    config = load_config(config_path)
    out.print(f"[bold]{config_path}[/]: OK")
    out.print(f"environments: {' → '.join(config.environments)}")
    out.print(f"teams: {', '.join(config.teams) or 'none'}")
    out.print(f"groups: {', '.join(config.groups) or 'none'}")
    out.print(f"apps ({len(config.apps)}):")
    for app in config.apps.values():
        tier = app.tier if app.tier == "auto" else f"manual ({app.reason})"
        groups = f", groups {', '.join(app.groups)}" if app.groups else ""
        drivers = sorted({e.deploy.driver for e in app.environments.values()})
        out.print(f"  {app.name}: team {app.team}, tier {tier}{groups}, driver {', '.join(drivers)}", markup=False)


@cli.group()
def db() -> None:
    """Database chores."""


@db.command("upgrade")
@config_option
@friendly_errors
def db_upgrade(config_path: Path) -> None:
    """Apply schema migrations to the configured database."""
    opened = open_project(config_path, migrate=False)
    upgrade(opened.db)
    out.print(f"database at {opened.db.safe_url} is up to date")


@dataclass(frozen=True)
class RunOptions:
    concurrency: int
    lease: float
    grace: float
    quiet: bool


def runner_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by serve and worker, gathered into one RunOptions argument ``run``."""
    options = [
        click.option(
            "--concurrency",
            type=click.IntRange(1, 1024),
            default=64,
            show_default=True,
            help="Most steps this process runs at once.",
        ),
        click.option(
            "--lease",
            type=click.FloatRange(min=1.0),
            default=15.0,
            show_default=True,
            metavar="SECONDS",
            help="Step lease length: a running step is heartbeated every third of it, and re-queued for another "
            "worker when its worker stays silent this long (crashed or cut off).",
        ),
        click.option(
            "--grace",
            type=click.FloatRange(min=0.0),
            default=30.0,
            show_default=True,
            metavar="SECONDS",
            help="On SIGTERM or Ctrl-C, how long running steps may finish before they are handed back to the queue.",
        ),
        click.option("--quiet", is_flag=True, help="Do not narrate events."),
    ]

    @functools.wraps(func)
    def wrapper(*args: Any, concurrency: int, lease: float, grace: float, quiet: bool, **kwargs: Any) -> Any:
        return func(*args, run=RunOptions(concurrency, lease, grace, quiet), **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _stop_on_signals() -> threading.Event:
    """SIGTERM and Ctrl-C ask for a graceful stop; installed before anything is printed, so a signal sent
    as soon as the process announces itself is never fatal."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        err.print(f"received {signal.Signals(signum).name}: finishing running steps, then stopping")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _run_conductor(opened: Opened, run: RunOptions, stop: threading.Event, *, exit_when_idle: bool) -> None:
    conductor = Conductor(
        opened.config, opened.db, concurrency=run.concurrency, lease_seconds=run.lease, grace_seconds=run.grace
    )
    narrator_stop = threading.Event()
    narrator = None
    if not run.quiet:
        tail = EventTail(opened.db)
        narrator = threading.Thread(target=tail.follow, args=(out, narrator_stop), daemon=True)
        narrator.start()
    try:
        conductor.run(stop, exit_when_idle=exit_when_idle)
    finally:
        narrator_stop.set()
        if narrator is not None:
            narrator.join(timeout=5)


@cli.command()
@config_option
@runner_options
@friendly_errors
def serve(config_path: Path, run: RunOptions) -> None:
    """Run planner and runner until stopped (SIGTERM or Ctrl-C stops gracefully)."""
    stop = _stop_on_signals()
    opened = open_project(config_path)
    out.print(f"conveyor {__version__} serving {len(opened.config.apps)} app(s) on {opened.db.safe_url}")
    _run_conductor(opened, run, stop, exit_when_idle=False)


@cli.command()
@config_option
@runner_options
@click.option("--exit-when-idle", is_flag=True, help="Exit 0 once nothing is pending, running or promotable.")
@friendly_errors
def worker(config_path: Path, run: RunOptions, exit_when_idle: bool) -> None:
    """Run planner and runner in this process; any number of workers may share one PostgreSQL database."""
    stop = _stop_on_signals()
    opened = open_project(config_path)
    _run_conductor(opened, run, stop, exit_when_idle=exit_when_idle)


@cli.command()
@config_option
@click.argument("app")
@click.option("--ref", help="Branch, tag or commit (default: the app's branch).")
@friendly_errors
def release(config_path: Path, app: str, ref: str | None) -> None:
    """Cut a release of APP from its repository; it heads for the first environment."""
    opened = open_project(config_path)
    result = Operations(opened.config, opened.db).create_release(app, ref)
    if result.created:
        out.print(
            f"release {result.label} of {app} ({result.sha[:12]}, {result.commits} commit(s)) "
            f"heads for {opened.config.environments[0]}",
            markup=False,
        )
    else:
        out.print(f"{app} {result.label} ({result.sha[:12]}) is already a release; nothing new", markup=False)


@cli.command()
@config_option
@click.argument("app")
@click.argument("version")
@click.option("--to", "environment", required=True, help="Environment to deploy to.")
@friendly_errors
def deploy(config_path: Path, app: str, version: str, environment: str) -> None:
    """Deploy an existing release VERSION (label or SHA) of APP to an environment."""
    opened = open_project(config_path)
    deployment_id = Operations(opened.config, opened.db).deploy(app, version, environment)
    out.print(f"deployment #{deployment_id} of {app} {version} to {environment} queued", markup=False)


@cli.command()
@config_option
@click.argument("app")
@click.option("--to", "environment", help="Target environment (default: the next one behind).")
@friendly_errors
def promote(config_path: Path, app: str, environment: str | None) -> None:
    """Promote the newest release that passed the previous environment (the manual tier's gate)."""
    opened = open_project(config_path)
    deployment_id = Operations(opened.config, opened.db).promote(app, environment)
    out.print(f"deployment #{deployment_id} of {app} queued (promoted)", markup=False)


@cli.command()
@config_option
@click.argument("app")
@click.option("--env", "environment", help="Only the block in this environment.")
@click.option("--reason", required=True, help="Why it is safe to go on (recorded).")
@friendly_errors
def unblock(config_path: Path, app: str, environment: str | None, reason: str) -> None:
    """Lift the automatic block on APP after a failure."""
    opened = open_project(config_path)
    lifted = Operations(opened.config, opened.db).unblock(app, environment, reason)
    out.print(f"lifted {lifted} block(s) on {app}", markup=False)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@cli.command()
@config_option
@click.argument("app", required=False)
@json_option
@friendly_errors
def status(config_path: Path, app: str | None, as_json: bool) -> None:
    """Apps × environments: release, state and age, with blocked and waiting markers."""
    opened = open_project(config_path)
    apps = views.status(opened.db, opened.config, app)
    if as_json:
        _json({"apps": [a.to_json() for a in apps]})
    else:
        out.print(status_table(apps, opened.config.environments))


@cli.command()
@config_option
@click.argument("app")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True, help="Most deployments to show.")
@json_option
@friendly_errors
def history(config_path: Path, app: str, limit: int, as_json: bool) -> None:
    """Deployments of APP, newest first."""
    opened = open_project(config_path)
    rows = views.history(opened.db, opened.config, app, limit)
    if as_json:
        _json({"app": app, "deployments": rows})
    else:
        out.print(history_table(app, rows))


@cli.command()
@config_option
@click.argument("app")
@click.argument("environment", required=False)
@json_option
@friendly_errors
def why(config_path: Path, app: str, environment: str | None, as_json: bool) -> None:
    """Explain, per environment, what conveyor decided for APP and why, with evidence."""
    opened = open_project(config_path)
    answer = views.why(opened.db, opened.config, app, environment)
    if as_json:
        _json(answer)
    else:
        print_why(out, answer)


@cli.command()
@click.option("--once", is_flag=True, help="Run the scenario, check every step happened, exit.")
@click.option("--keep", type=click.Path(path_type=Path), help="Build the demo in this folder and keep it.")
@friendly_errors
def demo(once: bool, keep: Path | None) -> None:
    """Build three apps in real git repositories and watch them flow to production."""
    from conveyor.demo.scenario import run_demo

    sys.exit(run_demo(out, once=once, keep=keep))


def main() -> None:
    cli(prog_name="conveyor")
