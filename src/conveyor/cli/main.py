"""The ``conveyor`` command line. Every command takes ``-c/--config`` (default ./conveyor.yaml)."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from conveyor import __version__, views
from conveyor.audit_trail import BadSince, describe_verification, operator_actions, parse_since, verify_chain
from conveyor.cli.audit import audit_table, cli_actor
from conveyor.cli.console import cli_console
from conveyor.cli.context import Opened, open_for_reading, open_for_writing
from conveyor.cli.errors import err, fail, friendly_errors
from conveyor.cli.logs import LogPrinter, deployment_ended
from conveyor.cli.logs import follow as follow_logs
from conveyor.cli.narrate import EventTail
from conveyor.cli.notifications import github_deliveries_table, notifications_table
from conveyor.cli.render import (
    error_issues_table,
    history_table,
    holds_lines,
    print_why,
    status_from_json,
    status_table,
    stop_banners,
)
from conveyor.clock import utc_now
from conveyor.config import STARTER_CONFIG, load_config
from conveyor.config.resolved import AppConfig
from conveyor.domain.audit import Anchor
from conveyor.domain.holds import unblock_command
from conveyor.engine.conductor import DEFAULT_CONCURRENCY, Conductor
from conveyor.github.deliveries import STATES, deliveries_for
from conveyor.notify.outbox import deliveries
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.migrate import current_revision, upgrade
from conveyor.web.client import TOKEN_VARIABLE, URL_VARIABLE, ApiClient, RemoteError

out = cli_console()

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
    out.print(
        f"wrote {config_path}; point each app's repo at its git repository, then run: conveyor check -c {config_path}",
        markup=False,
    )


@cli.command()
@config_option
@friendly_errors
def check(config_path: Path) -> None:
    """Validate the configuration and the local repositories; exit 2 listing every problem, or 0 with a summary."""
    config = load_config(config_path, check_repos=True)
    out.print(f"[bold]{config_path}[/]: OK")
    out.print(f"environments: {' → '.join(config.environments)}")
    out.print(f"teams: {', '.join(config.teams) or 'none'}")
    out.print(f"groups: {', '.join(config.groups) or 'none'}")
    notifiers = [f"{n.name} ({n.type}{', global' if n.is_global else ''})" for n in config.notifiers.values()]
    out.print(f"notifiers: {', '.join(notifiers) or 'none'}", markup=False)
    out.print(f"apps ({len(config.apps)}):")
    for app in config.apps.values():
        tier = app.tier if app.tier == "auto" else f"manual ({app.reason})"
        groups = f", groups {', '.join(app.groups)}" if app.groups else ""
        drivers = sorted({e.deploy.driver for e in app.environments.values()})
        out.print(
            f"  {app.name}: team {app.team}, tier {tier}{groups}, driver {', '.join(drivers)}{_source(app)}",
            markup=False,
        )
    if config.github is not None:
        auth = "an App" if config.github.app else "a token" if config.github.token else "webhooks only, no API"
        out.print(f"github: {config.github.api_url} with {auth}; webhooks at {config.link('/hooks/github')}")


def _source(app: AppConfig) -> str:
    """Where the app's releases come from, beside ``conveyor release``."""
    if app.github is not None:
        ci = f"CI {', '.join(app.ci.required)}" if app.ci else "no CI wait"
        paths = f", paths {', '.join(app.paths)}" if app.paths else ""
        return f", from GitHub {app.github} ({ci}{paths})"
    if app.poll is not None:
        return f", polled every {app.poll:g}s"
    return ""


@cli.group()
def db() -> None:
    """Database chores."""


@db.command("upgrade")
@config_option
@friendly_errors
def db_upgrade(config_path: Path) -> None:
    """Apply schema migrations to the configured database (creating a SQLite one)."""
    db = Database(load_config(config_path, reading=True).database_url)
    try:
        db.ping()
        before = upgrade(db)
        after = current_revision(db)
        if before is None:
            out.print(f"database at {db.safe_url}: created the conveyor schema (revision {after})")
        elif before != after:
            out.print(f"database at {db.safe_url} upgraded from revision {before} to {after}; it is up to date")
        else:
            out.print(f"database at {db.safe_url} is up to date (revision {after})")
    finally:
        db.dispose()


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
            type=click.IntRange(1, 4096),
            default=DEFAULT_CONCURRENCY,
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


def _conductor(opened: Opened, run: RunOptions) -> Conductor:
    return Conductor(
        opened.config, opened.db, concurrency=run.concurrency, lease_seconds=run.lease, grace_seconds=run.grace
    )


def _run_conductor(
    opened: Opened, run: RunOptions, stop: threading.Event, *, exit_when_idle: bool, conductor: Conductor | None = None
) -> None:
    conductor = conductor or _conductor(opened, run)
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
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the HTTP API listens on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port of the HTTP API.")
@friendly_errors
def serve(config_path: Path, run: RunOptions, host: str, port: int) -> None:
    """Run the HTTP API, planner and runner until stopped (SIGTERM or Ctrl-C stops gracefully)."""
    from conveyor.web import create_app
    from conveyor.web.server import CannotListen, listen, serve_http

    stop = _stop_on_signals()
    opened = open_for_writing(config_path)
    try:
        sock = listen(host, port)
    except CannotListen as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
    out.print(f"conveyor {__version__} serving {len(opened.config.apps)} app(s) on {opened.db.safe_url}")
    conductor = _conductor(opened, run)
    app = create_app(opened.config, opened.db, conductor=conductor)
    # The HTTP server runs in this (main) thread and the conductor beside it. A signal sets ``stop``:
    # the server drains its requests first, then the conductor is stopped and finishes its steps.
    conductor_stop = threading.Event()

    def conduct() -> None:
        try:
            _run_conductor(opened, run, conductor_stop, exit_when_idle=False, conductor=conductor)
        finally:
            stop.set()  # a conductor that ends takes the server down with it

    thread = threading.Thread(target=conduct, name="conductor")
    thread.start()
    try:
        serve_http(
            app,
            sock,
            until=stop,
            grace=run.grace,
            on_listening=lambda url: out.print(f"listening on {url}", markup=False),
        )
    finally:
        conductor_stop.set()
        thread.join()


@cli.command()
@config_option
@runner_options
@click.option("--exit-when-idle", is_flag=True, help="Exit 0 once nothing is pending, running or promotable.")
@friendly_errors
def worker(config_path: Path, run: RunOptions, exit_when_idle: bool) -> None:
    """Run planner and runner in this process; any number of workers may share one PostgreSQL database."""
    stop = _stop_on_signals()
    opened = open_for_writing(config_path)
    _run_conductor(opened, run, stop, exit_when_idle=exit_when_idle)


server_option = click.option(
    "--server",
    envvar=URL_VARIABLE,
    metavar="URL",
    help=f"Ask the conveyor serve at URL (token from {TOKEN_VARIABLE}) instead of the local database; "
    f"default: {URL_VARIABLE}.",
)


def _remote(server: str, call: Callable[[ApiClient], dict[str, Any]]) -> dict[str, Any]:
    """One request to the API; a failure exits as the local command would (see conveyor.web.client)."""
    client = ApiClient(server, os.environ.get(TOKEN_VARIABLE))
    try:
        return call(client)
    except RemoteError as exc:
        if click.get_current_context().find_root().params.get("debug"):
            raise
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    finally:
        client.close()


def reason_option(required: bool = False, help: str = "Why (recorded in the audit trail).") -> Callable[..., Any]:
    return click.option("--reason", required=required, help=help)


@cli.command()
@config_option
@click.argument("app")
@click.option("--ref", help="Branch, tag or commit (default: the app's branch).")
@reason_option()
@server_option
@friendly_errors
def release(config_path: Path, app: str, ref: str | None, reason: str | None, server: str | None) -> None:
    """Cut a release of APP from its repository; it heads for the first environment."""
    if server:
        answer = _remote(server, lambda api: api.release(app, ref, reason))
        created, label, sha, commits, first = (answer[k] for k in ("created", "label", "sha", "commits", "environment"))
    else:
        opened = open_for_writing(config_path)
        result = Operations(opened.config, opened.db).create_release(app, ref, actor=cli_actor(), reason=reason)
        created, label, sha, commits = result.created, result.label, result.sha, result.commits
        first = opened.config.environments[0]
    if created:
        out.print(f"release {label} of {app} ({sha[:12]}, {commits} commit(s)) heads for {first}", markup=False)
    else:
        out.print(f"{app} {label} ({sha[:12]}) is already a release; nothing new", markup=False)


def force_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--force`` and ``--reason``, shared by every command that may break glass."""
    func = click.option("--reason", default="", help="Why (required with --force; recorded and notified).")(func)
    return click.option(
        "--force", is_flag=True, help="Break glass: pass stops, freezes and windows (never a block or a lock)."
    )(func)


def _check_force(force: bool, reason: str) -> None:
    if force and not reason.strip():
        fail("--force needs --reason TEXT (it is recorded and notified)")


@cli.command()
@config_option
@click.argument("app")
@click.argument("version")
@click.option("--to", "environment", required=True, help="Environment to deploy to.")
@force_options
@server_option
@friendly_errors
def deploy(
    config_path: Path, app: str, version: str, environment: str, force: bool, reason: str, server: str | None
) -> None:
    """Deploy an existing release VERSION (label or SHA) of APP to an environment."""
    _check_force(force, reason)
    if server:
        answer = _remote(server, lambda api: api.deploy(app, version, environment, force=force, reason=reason))
        deployment_id, label = answer["deployment_id"], str(answer.get("release") or version)
        waits = answer.get("waits")
    else:
        opened = open_for_writing(config_path)
        ops = Operations(opened.config, opened.db)
        deployment_id = ops.deploy(app, version, environment, actor=cli_actor(), force=force, reason=reason)
        label, _ = views.deployment_target(opened.db, deployment_id)
        waits = ops.waits_behind(deployment_id)
    forced = " (forced past holds)" if force else ""
    out.print(f"deployment #{deployment_id} of {app} {label} to {environment} queued{forced}", markup=False)
    if waits:
        err.print(f"warning: it will wait: {waits}", markup=False)


@cli.command()
@config_option
@click.argument("app")
@click.option("--to", "environment", help="Target environment (default: the next one behind).")
@force_options
@server_option
@friendly_errors
def promote(config_path: Path, app: str, environment: str | None, force: bool, reason: str, server: str | None) -> None:
    """Promote the newest release that passed the previous environment (the manual tier's gate)."""
    _check_force(force, reason)
    if server:
        answer = _remote(server, lambda api: api.promote(app, environment, force=force, reason=reason))
        deployment_id, label, target = answer["deployment_id"], answer["release"], answer["environment"]
    else:
        opened = open_for_writing(config_path)
        deployment_id = Operations(opened.config, opened.db).promote(
            app, environment, actor=cli_actor(), force=force, reason=reason
        )
        label, target = views.deployment_target(opened.db, deployment_id)
    forced = ", forced past holds" if force else ""
    out.print(f"deployment #{deployment_id} of {app} {label} to {target} queued (promoted{forced})", markup=False)


@cli.command()
@config_option
@click.argument("app")
@click.option("--env", "environment", help="Only the block in this environment.")
@reason_option(required=True, help="Why it is safe to go on (recorded in the audit trail).")
@server_option
@friendly_errors
def unblock(config_path: Path, app: str, environment: str | None, reason: str, server: str | None) -> None:
    """Lift the automatic block on APP after a failure."""
    if server:
        lifted = _remote(server, lambda api: api.unblock(app, environment, reason))["lifted"]
    else:
        opened = open_for_writing(config_path)
        lifted = Operations(opened.config, opened.db).unblock(app, environment, reason, actor=cli_actor())
    out.print(f"lifted {lifted} block(s) on {app}", markup=False)


@cli.command()
@config_option
@click.argument("app")
@click.option("--env", "environment", help="Environment it starts at; it also stops every later one (default: all).")
@click.option("--reason", required=True, help="Why (recorded).")
@server_option
@friendly_errors
def block(config_path: Path, app: str, environment: str | None, reason: str, server: str | None) -> None:
    """Block APP by hand; only `conveyor unblock` lifts it (a newer release does not)."""
    if server:
        hold_id = _remote(server, lambda api: api.block(app, environment, reason))["id"]
    else:
        opened = open_for_writing(config_path)
        hold_id = Operations(opened.config, opened.db).block(app, environment, reason, actor=cli_actor())
    where = f"{environment} and every later environment" if environment else "every environment"
    lift = unblock_command(app, environment)
    out.print(f"hold #{hold_id}: {app} is blocked in {where}; lift it with: {lift}", markup=False)


until_option = click.option(
    "--until",
    metavar="TIME",
    help="When it ends on its own: ISO 8601 (2026-12-24T18:00+01:00; no offset means UTC) or relative "
    "(30m, 2h, 1d, 1w).",
)


@cli.command()
@config_option
@click.option("--app", help="Only this app (default: every app).")
@click.option("--env", "environment", help="Only this environment (default: every environment).")
@click.option("--reason", required=True, help="Why (recorded and notified).")
@until_option
@server_option
@friendly_errors
def freeze(
    config_path: Path, app: str | None, environment: str | None, reason: str, until: str | None, server: str | None
) -> None:
    """Stop automatic starts in exactly one scope: every app or one, every environment or one."""
    if server:
        hold_id = _remote(server, lambda api: api.freeze(app, environment, reason, until))["id"]
    else:
        opened = open_for_writing(config_path)
        hold_id = Operations(opened.config, opened.db).freeze(app, environment, reason, until, actor=cli_actor())
    scope = f"{app or 'every app'} in {environment or 'every environment'}"
    out.print(f"hold #{hold_id}: froze {scope}; lift it with: conveyor unfreeze {hold_id}", markup=False)


@cli.command()
@config_option
@click.option("--env", "environment", required=True, help="The environment to stop.")
@click.option("--reason", required=True, help="Why (recorded and notified).")
@until_option
@server_option
@friendly_errors
def stop(config_path: Path, environment: str, reason: str, until: str | None, server: str | None) -> None:
    """Stop the line: no automatic start in an environment, for any app."""
    if server:
        hold_id = _remote(server, lambda api: api.stop(environment, reason, until))["id"]
    else:
        opened = open_for_writing(config_path)
        hold_id = Operations(opened.config, opened.db).stop(environment, reason, until, actor=cli_actor())
    out.print(
        f"hold #{hold_id}: line stopped in {environment}; lift it with: conveyor unfreeze {hold_id}", markup=False
    )


@cli.command()
@config_option
@click.argument("app")
@click.option("--env", "environment", required=True, help="Environment to roll back.")
@click.option("--to", "version", help="Release to go back to (default: the last good one before what runs).")
@click.option("--reason", required=True, help="Why (recorded, and shown with the veto).")
@server_option
@friendly_errors
def rollback(
    config_path: Path, app: str, environment: str, version: str | None, reason: str, server: str | None
) -> None:
    """Deploy an earlier release of APP now, passing the environment's holds (never a lock); the release
    rolled back from is vetoed there: never started there again automatically."""
    if server:
        answer = _remote(server, lambda api: api.rollback(app, environment, reason, version))
        deployment_id, to, vetoed = answer["deployment_id"], answer["release"], answer["vetoed"]
    else:
        opened = open_for_writing(config_path)
        result = Operations(opened.config, opened.db).rollback(app, environment, reason, version, cli_actor())
        deployment_id, to, vetoed = result.deployment_id, result.to, result.rolled_back_from
    out.print(
        f"deployment #{deployment_id} rolls {app} back to {to} in {environment}; {vetoed} is vetoed there "
        f"(lift: conveyor unveto {app} {vetoed} --env {environment} --reason ...)",
        markup=False,
    )


@cli.command()
@config_option
@click.argument("hold_id", metavar="ID", type=click.IntRange(1, 2**31 - 1))
@click.option("--reason", help="Why it is safe to go on (recorded).")
@server_option
@friendly_errors
def unfreeze(config_path: Path, hold_id: int, reason: str | None, server: str | None) -> None:
    """Lift a freeze or a stop-the-line by its ID (see: conveyor holds)."""
    if server:
        lifted = _remote(server, lambda api: api.unfreeze(hold_id, reason))
    else:
        opened = open_for_writing(config_path)
        lifted = Operations(opened.config, opened.db).unfreeze(hold_id, reason or "", actor=cli_actor())
    scope = f"{lifted['app'] or 'every app'} in {lifted['environment'] or 'every environment'}"
    out.print(f"lifted {lifted['kind']} #{hold_id} ({scope})", markup=False)


@cli.command()
@config_option
@click.argument("app")
@click.argument("version")
@click.option("--env", "environment", required=True, help="Environment where the release is vetoed.")
@click.option("--reason", required=True, help="Why it may go there again (recorded).")
@server_option
@friendly_errors
def unveto(config_path: Path, app: str, version: str, environment: str, reason: str, server: str | None) -> None:
    """Lift the veto on release VERSION of APP in an environment (set when it was rolled back there)."""
    if server:
        _remote(server, lambda api: api.unveto(app, version, environment, reason))
    else:
        opened = open_for_writing(config_path)
        Operations(opened.config, opened.db).unveto(app, version, environment, reason, cli_actor())
    out.print(f"{app} {version} may go to {environment} again", markup=False)


@cli.command()
@config_option
@click.argument("app", required=False)
@click.option("--env", "environment", help="Only deployments to this environment.")
@click.option("--deployment", "deployment_id", type=int, help="Cancel this deployment (instead of naming an app).")
@click.option("--reason", required=True, help="Why (recorded).")
@server_option
@friendly_errors
def cancel(
    config_path: Path,
    app: str | None,
    environment: str | None,
    deployment_id: int | None,
    reason: str,
    server: str | None,
) -> None:
    """Cancel APP's queued and running deployments, or one by --deployment ID. Queued ones end at once;
    a running one stops at its worker's next heartbeat, then frees its locks."""
    if app is None and deployment_id is None:
        fail("name an app, or a deployment with --deployment ID", 2)
    if app is not None and deployment_id is not None:
        fail("name an app or a deployment (--deployment ID), not both", 2)
    if server:
        ids = _remote(server, lambda api: api.cancel(app, environment, reason, deployment_id))["cancelled"]
    else:
        opened = open_for_writing(config_path)
        ids = Operations(opened.config, opened.db).cancel(app, environment, reason, deployment_id, cli_actor())
    out.print(f"cancelled deployment(s) {', '.join(f'#{i}' for i in ids)}", markup=False)


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def answer(
    server: str | None,
    config_path: Path,
    local: Callable[[Opened], dict[str, Any]],
    remote: Callable[[ApiClient], dict[str, Any]],
) -> dict[str, Any]:
    """The answer to a read, as the API would give it: from the ``conveyor serve`` at ``server`` when
    given (no config or database needed here), else from the local database opened for reading
    (which creates nothing). Every read command goes through here; its rendering takes this answer."""
    if server:
        return _remote(server, remote)
    return local(open_for_reading(config_path))


@cli.command()
@config_option
@json_option
@server_option
@friendly_errors
def holds(config_path: Path, as_json: bool, server: str | None) -> None:
    """The holds in force (blocks, vetoes, stops, freezes), each with the command that lifts it."""
    data = answer(
        server,
        config_path,
        lambda opened: {"holds": Operations(opened.config, opened.db).holds()},
        lambda api: api.holds(),
    )
    if as_json:
        _json(data)
    else:
        for line in holds_lines(data["holds"]):
            out.print(line)


@cli.command()
@config_option
@click.argument("app", required=False)
@json_option
@server_option
@friendly_errors
def status(config_path: Path, app: str | None, as_json: bool, server: str | None) -> None:
    """Apps × environments: release, state and age, with blocked and waiting markers."""
    data = answer(
        server,
        config_path,
        lambda opened: {
            "apps": [a.to_json() for a in views.status(opened.db, opened.config, app)],
            "stops": views.stops(opened.db),
        },
        lambda api: api.status(app),
    )
    if as_json:
        _json(data)
    else:
        for banner in stop_banners(data.get("stops", [])):
            out.print(banner)
        apps = status_from_json(data["apps"])
        out.print(status_table(apps, tuple(apps[0].environments) if apps else ()))


@cli.command()
@config_option
@click.argument("app")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True, help="Most deployments to show.")
@json_option
@server_option
@friendly_errors
def history(config_path: Path, app: str, limit: int, as_json: bool, server: str | None) -> None:
    """Deployments of APP, newest first."""
    data = answer(
        server,
        config_path,
        lambda opened: {"app": app, "deployments": views.history(opened.db, opened.config, app, limit)},
        lambda api: api.history(app, limit),
    )
    if as_json:
        _json(data)
    else:
        out.print(history_table(app, data["deployments"]))


@cli.command()
@config_option
@click.argument("app")
@click.argument("environment", required=False)
@click.option("--env", "env_option", metavar="ENVIRONMENT", help="The same as the ENVIRONMENT argument.")
@json_option
@server_option
@friendly_errors
def why(
    config_path: Path, app: str, environment: str | None, env_option: str | None, as_json: bool, server: str | None
) -> None:
    """Explain, per environment, what conveyor decided for APP and why, with evidence."""
    if environment and env_option and environment != env_option:
        raise click.UsageError(f"two environments given: {environment!r} and --env {env_option!r}")
    environment = environment or env_option
    data = answer(
        server,
        config_path,
        lambda opened: views.why(opened.db, opened.config, app, environment),
        lambda api: api.why(app, environment),
    )
    if as_json:
        _json(data)
    else:
        print_why(out, data)


@cli.command()
@config_option
@click.argument("app")
@click.option("--env", "environment", help="The newest deployment in this environment.")
@click.option("--deployment", "deployment_id", type=click.IntRange(1, 2**31 - 1), help="This deployment (by #id).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the deployment has ended.")
@json_option
@server_option
@friendly_errors
def logs(
    config_path: Path,
    app: str,
    environment: str | None,
    deployment_id: int | None,
    follow: bool,
    as_json: bool,
    server: str | None,
) -> None:
    """The steps, attempts and logs of a deployment of APP (default: its newest one)."""
    if follow and as_json:
        raise click.UsageError("--follow and --json cannot be combined")
    fetch: Callable[[int | None], dict[str, Any]]
    if server:
        url = server

        def fetch(pinned: int | None) -> dict[str, Any]:
            return _remote(url, lambda api: api.logs(app, environment, pinned))
    else:
        opened = open_for_reading(config_path)

        def fetch(pinned: int | None) -> dict[str, Any]:
            return views.logs(opened.db, opened.config, app, environment, pinned)

    answer = fetch(deployment_id)
    if as_json:
        _json(answer)
        return
    printer = LogPrinter(out)
    if not follow:
        printer.show(answer, final=True)
        return
    pinned = answer["deployment"]["id"]  # the newest now: later ones are not this one's story
    # Ctrl-C ends following (the deployment goes on). It sets a flag rather than raising, so it is never
    # lost inside a database read that happens to be running when it arrives.
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: interrupted.set())
    try:
        printer.show(answer, final=deployment_ended(answer))
        if not deployment_ended(answer):
            follow_logs(lambda: fetch(pinned), printer, interrupted)
    finally:
        signal.signal(signal.SIGINT, previous)  # as it was, for a caller running this command in-process
    if interrupted.is_set():
        sys.exit(130)


@cli.command("deliveries")
@config_option
@click.option("--app", default=None, help="Only deliveries about the GitHub repository this app follows.")
@click.option("--state", "state", type=click.Choice(STATES), default=None, help="Only deliveries in this state.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Most deliveries to show.")
@json_option
@server_option
@friendly_errors
def github_deliveries(
    config_path: Path, app: str | None, state: str | None, limit: int, as_json: bool, server: str | None
) -> None:
    """Webhook deliveries from GitHub, newest first: what each was about and what conveyor made of it."""
    data = answer(
        server,
        config_path,
        lambda opened: deliveries_for(opened.db, opened.config, app, state, limit),
        lambda api: api.github_deliveries(app, state, limit),
    )
    if as_json:
        _json(data)
    else:
        out.print(github_deliveries_table(data["deliveries"]))


@cli.command()
@config_option
@click.option("--failed", "failed_only", is_flag=True, help="Only notifications conveyor gave up on.")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True, help="Most deliveries to show.")
@json_option
@friendly_errors
def notifications(config_path: Path, failed_only: bool, limit: int, as_json: bool) -> None:
    """Deliveries of events to notifiers, newest first: state, attempts and the last error."""
    rows = deliveries(open_for_reading(config_path).db, failed_only=failed_only, limit=limit)
    if as_json:
        _json({"notifications": rows})
    else:
        out.print(notifications_table(rows, failed_only=failed_only))


@cli.group(invoke_without_command=True)
@config_option
@click.option(
    "--since", metavar="TIME", help="Only actions since TIME: an ISO 8601 time (UTC) or an age (30m, 12h, 7d)."
)
@click.option("--app", help="Only actions on this app.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Most actions to show.")
@json_option
@server_option
@click.pass_context
@friendly_errors
def audit(
    ctx: click.Context,
    config_path: Path,
    since: str | None,
    app: str | None,
    limit: int,
    as_json: bool,
    server: str | None,
) -> None:
    """Operator actions, newest first: who did what, where, when and why. See also: conveyor audit verify."""
    if ctx.invoked_subcommand is not None:
        return
    after = _since(since)
    if server:
        answer = _remote(server, lambda api: api.audit(since=after, app=app, limit=limit))
    else:
        opened = open_for_reading(config_path)
        answer = operator_actions(opened.db, opened.config, since=after, app=app, limit=limit).to_json()
    if as_json:
        _json(answer)
    else:
        out.print(audit_table(answer["actions"]))


def _since(text: str | None) -> datetime | None:
    """``--since`` as a time, or exit 2 with one line saying what is accepted."""
    if text is None:
        return None
    try:
        return parse_since(text, utc_now())
    except BadSince as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)


def _given_on_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE


@audit.command("verify")
@config_option
@click.option(
    "--expect",
    metavar="SEQ:HASH",
    help="Also insist the chain still has HASH at position SEQ (a head printed by an earlier verify, kept elsewhere).",
)
@json_option
@server_option
@click.pass_context
@friendly_errors
def audit_verify(ctx: click.Context, config_path: Path, expect: str | None, as_json: bool, server: str | None) -> None:
    """Walk the events' hash chain: exit 0 with how many verified, or 1 naming the first event that breaks it."""
    try:
        anchor = Anchor.parse(expect) if expect else None
    except ValueError as exc:
        fail(str(exc), 2)
        return
    # `conveyor audit -c FILE --json verify` means the same as `conveyor audit verify -c FILE --json`
    group = ctx.parent
    if group is not None:
        listing = [f"--{name}" for name in ("since", "app", "limit") if _given_on_command_line(group, name)]
        if listing:
            fail(f"`conveyor audit verify` checks every event and takes no {' or '.join(listing)}", 2)
        if not _given_on_command_line(ctx, "config_path"):
            config_path = group.params["config_path"]
        as_json = as_json or group.params["as_json"]
        server = server or group.params["server"]
    if server:
        answer = _remote(server, lambda api: api.verify_audit(expect))
    else:
        answer = verify_chain(open_for_reading(config_path).db, anchor)
    if as_json:
        _json(answer)
    else:
        (out if answer["ok"] else err).print(describe_verification(answer), markup=False)
    sys.exit(0 if answer["ok"] else 1)


@cli.command()
@config_option
@click.argument("app")
@click.option("--env", "environment", required=True, help="The environment the DSN reports from.")
@server_option
@friendly_errors
def dsn(config_path: Path, app: str, environment: str, server: str | None) -> None:
    """Print the Sentry DSN for APP in an environment (give it to the app as SENTRY_DSN); its key is made
    on first use and stays the same after."""
    from conveyor.error_intake.issues import project_dsn

    if server:
        answer = _remote(server, lambda api: api.dsn(app, environment))
    else:
        opened = open_for_writing(config_path, notifying=False)  # a key, no event: no notifier secrets needed
        answer = project_dsn(opened.db, opened.config, app, environment, utc_now())
    click.echo(answer["dsn"])


@cli.command()
@config_option
@click.argument("app")
@click.option("--env", "environment", help="Only this environment.")
@click.option(
    "--since",
    metavar="TIME",
    help="Issues seen since TIME: an ISO date or time, or an age (30m, 12h, 7d); default 24h.",
)
@json_option
@server_option
@friendly_errors
def errors(
    config_path: Path, app: str, environment: str | None, since: str | None, as_json: bool, server: str | None
) -> None:
    """Error issues of APP from its Sentry SDKs: events, first and last seen, the release that introduced each."""
    from conveyor.error_intake.issues import error_issues

    after = _since(since)
    data = answer(
        server,
        config_path,
        lambda opened: error_issues(opened.db, opened.config, app, environment, after, utc_now()),
        lambda api: api.errors(app, environment, after),
    )
    if as_json:
        _json(data)
    else:
        out.print(error_issues_table(data))


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
