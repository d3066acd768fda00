"""Polling against real git servers on loopback: ``git daemon`` serving a bare repository over git://,
a port nobody listens on, and a server that accepts connections and never answers.

A new head pushed to the daemon is released by the poll actor and deployed to the first environment by
a conductor; an unreachable or hanging remote is recorded as failing and stops no other app; a remote
whose head did not move makes no release.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.repos import GitError, InvalidRef, branch_head
from conveyor.sources.poll import Poller
from conveyor.store.database import Database
from conveyor.store.polls import poll_records
from conveyor.store.tables import Release
from tests.gitrepos import GIT_ENV, git
from tests.integration.harness import (
    ConductorThread,
    add_commit,
    deployment_state,
    free_port,
    load,
    make_app_repo,
    run_until_idle,
    wait_for,
    write_config,
)


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[str]:
    """``git daemon`` on a free loopback port serving (and accepting pushes to) the bare repositories
    under ``tmp_path / "served"``; yields the base URL (``git://127.0.0.1:PORT``)."""
    base = tmp_path / "served"
    base.mkdir()
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={base}",
            "--export-all",
            "--enable=receive-pack",
            str(base),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **GIT_ENV},
    )
    try:
        wait_for(lambda: _listening(port), 10, "git daemon to listen")
        yield f"git://127.0.0.1:{port}"
    finally:
        daemon.terminate()
        daemon.wait(10)
        assert daemon.stderr is not None
        daemon.stderr.close()


@pytest.fixture
def hanging_remote() -> Iterator[str]:
    """A git:// URL whose server accepts every connection and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"git://127.0.0.1:{listener.getsockname()[1]}/hangs.git"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def serve_repo(tmp_path: Path, daemon_url: str, name: str) -> tuple[Path, str]:
    """A bare repository ``name.git`` served by the daemon, and a work repository that pushes to it over
    git://; returns the work repository and the served URL."""
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(tmp_path / "served" / f"{name}.git"))
    work = tmp_path / "work" / name
    make_app_repo(work, {"README": f"{name} 1\n"}, f"{name} 1")
    url = f"{daemon_url}/{name}.git"
    git(work, "remote", "add", "origin", url)
    git(work, "push", "-q", "origin", "main")
    return work, url


def push(work: Path, n: int) -> str:
    sha = add_commit(work, {"README": f"{work.name} {n}\n"}, f"{work.name} {n}")
    git(work, "push", "-q", "origin", "main")
    return sha


def config_text(web: str, refused: str, hangs: str | None = None) -> str:
    hanging = f'  hangs: {{repo: "{hangs}", team: core}}\n' if hangs else ""
    return f"""\
environments: [integration, production]
teams: {{core: {{}}}}
defaults:
  deploy: {{driver: fake}}
  poll: 5s
apps:
  web: {{repo: "{web}", team: core}}
  refused: {{repo: "{refused}", team: core}}
{hanging}"""


def shas(db: Database, app: str) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(Release.sha).where(Release.app == app).order_by(Release.id)))


def released_by(db: Database, app: str) -> set[str]:
    with db.read() as session:
        return set(session.scalars(select(Release.created_by).where(Release.app == app)))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_conductor_releases_and_deploys_each_new_head(
    tmp_path: Path, db_url: str, db: Database, git_daemon: str
) -> None:
    work, web_url = serve_repo(tmp_path, git_daemon, "web")
    first = git(work, "rev-parse", "HEAD")
    refused = f"git://127.0.0.1:{free_port()}/refused.git"
    config = load(write_config(tmp_path, config_text(web_url, refused)))
    conductor = ConductorThread(config, db_url, exit_when_idle=False).start()
    try:
        wait_for(lambda: shas(db, "web") == [first], 30, "the first head to be released")
        release_ids = _release_ids(db, "web")
        wait_for(
            lambda: deployment_state(db, "web", "integration", release_ids[0]) == "succeeded",
            30,
            "the first release to be deployed to integration",
        )
        wait_for(lambda: _error(db, "refused") is not None, 30, "the refused remote to be recorded")

        second = push(work, 2)  # picked up at the next turn, at most 5s later
        wait_for(lambda: shas(db, "web") == [first, second], 30, "the pushed head to be released")
        wait_for(
            lambda: deployment_state(db, "web", "integration", _release_ids(db, "web")[1]) == "succeeded",
            30,
            "the second release to be deployed to integration",
        )

        polled = poll_records(db)["web"].polled_at
        wait_for(lambda: poll_records(db)["web"].polled_at != polled, 30, "another turn of web")
        assert shas(db, "web") == [first, second]  # no new head, no release
    finally:
        conductor.stop.set()
        conductor.join(60)

    assert released_by(db, "web") == {"poll"}
    assert shas(db, "refused") == []
    records = poll_records(db)
    assert records["web"].head == second and records["web"].error is None
    refused_error = records["refused"].error
    assert refused_error is not None and records["refused"].failing_since is not None
    assert "refused" in refused_error.lower() or "unable to connect" in refused_error.lower(), refused_error


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_hanging_remote_times_out_and_holds_up_no_other_app(
    tmp_path: Path, db_url: str, db: Database, git_daemon: str, hanging_remote: str
) -> None:
    work, web_url = serve_repo(tmp_path, git_daemon, "web")
    refused = f"git://127.0.0.1:{free_port()}/refused.git"
    config = load(write_config(tmp_path, config_text(web_url, refused, hanging_remote)))
    poller = Poller(config, db, timeout=2.0)

    began = time.monotonic()
    poller.run()
    wait_for(lambda: shas(db, "web") == [git(work, "rev-parse", "HEAD")], 20, "web to be released")
    released_after = time.monotonic() - began
    wait_for(lambda: _error(db, "hangs") is not None, 20, "the hanging remote to time out")
    assert released_after < 2.0, f"web waited {released_after:.1f}s for the hanging remote"
    assert "no answer within 2s" in (_error(db, "hangs") or "")

    run_until_idle(config, db_url, timeout=30)
    (release_id,) = _release_ids(db, "web")
    assert deployment_state(db, "web", "integration", release_id) == "succeeded"
    assert deployment_state(db, "web", "production", release_id) == "succeeded"


def _release_ids(db: Database, app: str) -> list[int]:
    with db.read() as session:
        return list(session.scalars(select(Release.id).where(Release.app == app).order_by(Release.id)))


def _error(db: Database, app: str) -> str | None:
    record = poll_records(db).get(app)
    return record.error if record is not None else None


def test_branch_head_asks_the_remote(tmp_path: Path, git_daemon: str) -> None:
    work, url = serve_repo(tmp_path, git_daemon, "web")
    assert branch_head(url, "main") == git(work, "rev-parse", "HEAD")
    assert branch_head(url, "no-such-branch") is None
    with pytest.raises(InvalidRef):
        branch_head(url, "--upload-pack=touch /tmp/pwned")
    with pytest.raises(ValueError, match="invalid repository URL"):
        branch_head("--upload-pack=touch /tmp/pwned", "main")
    with pytest.raises(GitError, match="repository not exported"):
        branch_head(f"{git_daemon}/missing.git", "main")
