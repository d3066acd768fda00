"""The installed ``conveyor`` script, ``--help`` on every command, and errors that reach the user:
one line and a non-zero exit, a traceback only with ``--debug``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conveyor import __version__
from conveyor.cli.main import cli
from tests.cli.conftest import Project

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"


def conveyor_script() -> str:
    found = shutil.which("conveyor", path=str(Path(sys.executable).parent))
    assert found, "the conveyor console script is not installed next to the interpreter"
    return found


def run_script(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CONVEYOR_DATABASE_URL"}
    return subprocess.run(
        [conveyor_script(), *args],
        cwd=cwd,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


ALL_COMMANDS = list(commands(cli))


# -- the console script -------------------------------------------------------------------------------


def test_the_console_script_runs(project: Project) -> None:
    version = run_script("--version", cwd=project.root)
    assert version.returncode == 0
    assert version.stdout.strip() == f"conveyor, version {__version__}"
    checked = run_script("check", cwd=project.root)  # -c defaults to ./conveyor.yaml
    assert checked.returncode == 0, checked.stderr
    assert "conveyor.yaml: OK" in checked.stdout


def test_an_unreachable_database_is_one_error_without_a_traceback(project: Project) -> None:
    result = run_script("status", "-c", str(project.config), cwd=project.root, CONVEYOR_DATABASE_URL=UNREACHABLE)
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach the database at postgresql+psycopg://nobody@")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_debug_shows_the_traceback(project: Project) -> None:
    result = run_script(
        "--debug", "status", "-c", str(project.config), cwd=project.root, CONVEYOR_DATABASE_URL=UNREACHABLE
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "DatabaseUnreachable: cannot reach the database" in result.stderr


def test_serve_stops_gracefully_on_sigterm(project: Project) -> None:
    serve = subprocess.Popen(
        [conveyor_script(), "serve", "-c", str(project.config), "--quiet", "--port", "0"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert first.startswith(f"conveyor {__version__} serving 2 app(s) on sqlite:///")
        serve.send_signal(signal.SIGTERM)
        _out, err = serve.communicate(timeout=30)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()
    assert serve.returncode == 0, err
    assert "received SIGTERM" in err
    assert "Traceback" not in err


# -- errors in-process ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["status"], ["history", "web"], ["why", "web"], ["logs", "web"], ["release", "web"]]
)
def test_every_command_reports_an_unreachable_database_with_exit_1(project: Project, command: list[str]) -> None:
    result = project.run(*command, env={"CONVEYOR_DATABASE_URL": UNREACHABLE})
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: cannot reach the database")


def test_debug_lets_the_error_through(project: Project) -> None:
    result = project.run("status", env={"CONVEYOR_DATABASE_URL": UNREACHABLE}, debug=True)
    assert result.exit_code == 1
    assert type(result.exception).__name__ == "DatabaseUnreachable"


def test_an_unreachable_database_is_exactly_one_line(project: Project) -> None:
    result = project.run("status", env={"CONVEYOR_DATABASE_URL": UNREACHABLE})
    assert result.stderr.splitlines() == [result.stderr.strip()]


@pytest.mark.parametrize(
    "url",
    ["not a url", "nonsense://x", "mysql://nobody@127.0.0.1:1/none", "sqlite:///{root}/conveyor.yaml/sub/x.db"],
)
def test_a_database_url_that_cannot_be_used_is_one_line(project: Project, url: str) -> None:
    result = project.run("status", env={"CONVEYOR_DATABASE_URL": url.format(root=project.root)})
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (1, 2)
    assert len(result.stderr.splitlines()) == 1


def test_check_rejects_a_database_url_that_cannot_be_parsed(project: Project) -> None:
    project.config.write_text(project.config.read_text() + 'database_url: "not a url"\n')
    result = project.run("check")
    assert result.exit_code == 2
    assert "database_url" in result.stderr


# -- help -------------------------------------------------------------------------------------------------


def test_every_command_is_walked() -> None:
    expected = {"init", "check", "db", "db upgrade", "serve", "worker", "release", "deploy", "promote"}
    expected |= {"unblock", "status", "history", "why", "logs", "notifications", "demo"}
    expected |= {"block", "freeze", "stop", "unfreeze", "holds"}
    expected |= {"rollback", "unveto", "cancel"}
    expected |= {"audit", "audit verify"}
    expected |= {"dsn", "errors", "deliveries"}
    assert {" ".join(path) for path in ALL_COMMANDS} == expected


@pytest.mark.parametrize("path", [(), *ALL_COMMANDS], ids=lambda p: " ".join(p) or "conveyor")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(path: tuple[str, ...], flag: str) -> None:
    result = CliRunner().invoke(cli, [*path, flag], prog_name="conveyor")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: conveyor {' '.join(path)}".rstrip())


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["deplyo"], prog_name="conveyor")
    assert result.exit_code == 2
    assert "No such command 'deplyo'" in result.output
