"""``status``, ``why`` and ``history`` with ``--server``/``CONVEYOR_URL``: answered by a live ``conveyor serve``,
with no local config or database, and printing what the local command prints."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from conveyor.cli.main import cli
from tests.web.conftest import TOKEN
from tests.web.test_serve import Live, start


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start(tmp_path_factory.mktemp("reads"))
    try:
        released = httpx.post(f"{server.url}/api/apps/web/releases", headers={"Authorization": f"Bearer {TOKEN}"})
        assert released.status_code == 201, released.text
        server.wait_until(lambda: server.state("web", "production") == "succeeded")
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


def remote(tmp_path: Path, *args: str, **env: str | None) -> Result:
    """The command run where there is no config and no database: only a server URL."""
    environ: dict[str, str | None] = {"CONVEYOR_DATABASE_URL": None, "CONVEYOR_TOKEN": None, **env}
    where = tmp_path / "elsewhere"
    where.mkdir(exist_ok=True)
    before = os.getcwd()
    os.chdir(where)
    try:
        result = CliRunner().invoke(cli, list(args), env=environ, prog_name="conveyor")
    finally:
        os.chdir(before)
    assert list(where.iterdir()) == []  # no config there, and nothing created
    return result


def local(live: Live, *args: str) -> Result:
    return live.project.run(*args)  # the config's API tokens are not needed to read


READS = [
    ("status", "--json"),
    ("status", "web", "--json"),
    ("why", "web", "--json"),
    ("why", "api", "staging", "--json"),
    ("history", "web", "--json"),
    ("history", "web", "--limit", "2", "--json"),
]


@pytest.mark.parametrize("read", READS, ids=" ".join)
def test_a_remote_read_answers_what_the_local_read_answers(live: Live, tmp_path: Path, read: tuple[str, ...]) -> None:
    here = local(live, *read)
    there = remote(tmp_path, *read, "--server", live.url)
    assert (here.exit_code, there.exit_code) == (0, 0), (here.output, there.output)
    assert json.loads(there.stdout) == json.loads(here.stdout)


@pytest.mark.parametrize("read", [("status",), ("status", "web"), ("why", "web"), ("history", "web")], ids=" ".join)
def test_a_remote_read_prints_the_tables_from_conveyor_url(live: Live, tmp_path: Path, read: tuple[str, ...]) -> None:
    there = remote(tmp_path, *read, CONVEYOR_URL=live.url)
    assert there.exit_code == 0, there.output
    here = local(live, *read)
    assert there.stdout.splitlines()[0] == here.stdout.splitlines()[0]
    assert "succeeded" in there.stdout
    assert len(there.stdout.splitlines()) == len(here.stdout.splitlines())


def test_remote_reads_fail_as_local_ones_do(live: Live, tmp_path: Path) -> None:
    unknown = remote(tmp_path, "why", "wbe", "--server", live.url)
    assert (unknown.exit_code, unknown.stderr.strip()) == (2, "error: unknown app 'wbe' (known: web, api)")
    env = remote(tmp_path, "why", "web", "prod", "--server", live.url)
    assert env.exit_code == 2, env.output
    assert "prod" in env.stderr


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    result = remote(tmp_path, "status", "--server", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach conveyor at http://127.0.0.1:9")
    assert len(result.stderr.strip().splitlines()) == 1
