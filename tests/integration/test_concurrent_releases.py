"""Releases at once: threads of one process, separate processes, and (tests/web/test_serve_releases.py) a
live ``conveyor serve``; and releasing after history was rewritten upstream and garbage-collected."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from conveyor import operations
from conveyor.config import Config, load_config
from conveyor.operations import Operations
from conveyor.repos import RepoMirror, mirror_path_for
from conveyor.store.database import Database
from conveyor.store.tables import Release
from tests.cli.conftest import BASE_CONFIG, Project, write_project
from tests.gitrepos import commit, git, make_repo

APPS = [f"app{i}" for i in range(10)]


def ten_apps(root: Path) -> Project:
    """The usual project plus ten more apps, each with its own repository."""
    lines = [f"  {name}: {{repo: ./repos/{name}, team: publishing}}\n" for name in APPS]
    project = write_project(root, BASE_CONFIG + "".join(lines))
    for name in APPS:
        make_repo(project.repo(name), {"app.py": f"print({name!r})\n"}, f"{name}: first commit")
    return project


@pytest.fixture
def setup(tmp_path: Path, db_url: str) -> Iterator[tuple[Project, Config, Database]]:
    project = ten_apps(tmp_path)
    config = load_config(project.config, {"CONVEYOR_DATABASE_URL": db_url})
    db = Database(db_url)
    yield project, config, db
    db.dispose()


def release_counts(db: Database) -> dict[tuple[str, str], int]:
    with db.read() as session:
        rows = session.execute(select(Release.app, Release.sha, func.count()).group_by(Release.app, Release.sha))
        return {(app, sha): count for app, sha, count in rows}


def test_ten_parallel_releases_of_one_app_make_one_release(setup: tuple[Project, Config, Database]) -> None:
    project, config, db = setup
    commit(project.repo("web"), {"new.txt": "1\n"}, "one more commit")
    ops = Operations(config, db)
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: ops.create_release("web"), range(10)))
    assert [r.created for r in results].count(True) == 1
    assert {r.release_id for r in results} == {results[0].release_id}
    assert release_counts(db) == {("web", project.head("web")): 1}


def test_parallel_releases_of_ten_apps_make_one_release_each(setup: tuple[Project, Config, Database]) -> None:
    project, config, db = setup
    ops = Operations(config, db)
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(ops.create_release, APPS * 2))
    assert sum(r.created for r in results) == 10
    assert release_counts(db) == {(name, project.head(name)): 1 for name in APPS}


def test_a_release_racing_past_the_check_is_the_existing_release(
    setup: tuple[Project, Config, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests both find no row, both insert: the loser meets the unique (app, sha) constraint and
    answers with the winner's release. The race is forced by hiding the row from both checks."""
    project, config, db = setup
    ops = Operations(config, db)
    first = ops.create_release("web")
    real = operations._release_by_sha
    calls: list[str] = []

    def blind_twice(session: Any, app: str, sha: str) -> Release | None:
        calls.append(sha)
        return None if len(calls) <= 2 else real(session, app, sha)

    monkeypatch.setattr(operations, "_release_by_sha", blind_twice)
    again = ops.create_release("web")
    assert len(calls) == 3  # the read, the check in the write, then the lookup after the constraint
    assert (again.created, again.release_id, again.label) == (False, first.release_id, first.label)
    assert release_counts(db) == {("web", project.head("web")): 1}


def test_releases_from_separate_processes_serialise_their_fetches(tmp_path: Path, db_url: str) -> None:
    project = ten_apps(tmp_path)
    env = {**os.environ, "CONVEYOR_DATABASE_URL": db_url}
    argv = [sys.executable, "-m", "conveyor"]
    subprocess.run([*argv, "db", "upgrade", "-c", str(project.config)], env=env, check=True, capture_output=True)
    for name in ("web", *APPS[:3]):
        commit(project.repo(name), {"new.txt": "1\n"}, "one more commit")
    processes = [
        subprocess.Popen(
            [*argv, "release", name, "-c", str(project.config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ["web"] * 6 + APPS[:3] * 2
    ]
    outputs = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [code for code, _, _ in outputs] == [0] * len(processes), outputs
    db = Database(db_url)
    try:
        counts = release_counts(db)
    finally:
        db.dispose()
    assert counts == {(name, project.head(name)): 1 for name in ("web", *APPS[:3])}


def test_the_mirror_lock_is_a_file_lock_other_processes_see(tmp_path: Path) -> None:
    from conveyor.repos import _holding

    path = mirror_path_for(tmp_path, "web")
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    lock_file = str(path.with_name("web.git.lock"))
    with _holding(path):
        held = subprocess.run([sys.executable, "-c", probe, lock_file], check=False)
    free = subprocess.run([sys.executable, "-c", probe, lock_file], check=False)
    assert (held.returncode, free.returncode) == (3, 0)


# -- history rewritten upstream ------------------------------------------------------------------------


def rewrite_history(repo: Path) -> None:
    """Force-push as a user would: drop the newest commit, commit something else, collect the garbage."""
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    commit(repo, {"rewritten.txt": "1\n"}, "rewritten history")
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")


@pytest.fixture
def released_twice(setup: tuple[Project, Config, Database]) -> tuple[Project, Config, Database, RepoMirror]:
    """web released at its second commit, so rewriting history drops the released commit."""
    project, config, db = setup
    commit(project.repo("web"), {"second.txt": "1\n"}, "second commit")
    ops = Operations(config, db)
    assert ops.create_release("web").created
    return project, config, db, ops.mirror("web")


def test_release_after_a_force_push_collected_in_the_mirror(
    released_twice: tuple[Project, Config, Database, RepoMirror], caplog: pytest.LogCaptureFixture
) -> None:
    project, config, db, mirror = released_twice
    rewrite_history(project.repo("web"))
    mirror.fetch()
    git(mirror.path, "gc", "-q", "--prune=now")  # the released commit is unreachable now: collected
    with caplog.at_level(logging.WARNING, logger="conveyor.operations"):
        result = Operations(config, db).create_release("web")
    assert result.created and result.sha == project.head("web")
    assert result.commits == 2  # the new release's whole history: its base is gone
    assert "no longer in its repository" in caplog.text


def test_release_retries_once_with_a_full_fetch_when_the_mirror_lost_objects(
    released_twice: tuple[Project, Config, Database, RepoMirror], caplog: pytest.LogCaptureFixture
) -> None:
    """A mirror whose refs name objects it no longer has (an interrupted gc) fails every fetch with "bad
    object"; the retry drops the refs and fetches them all again."""
    project, config, db, mirror = released_twice
    rewrite_history(project.repo("web"))
    objects = mirror.path / "objects"
    for entry in objects.iterdir():
        if entry.name not in ("info", "pack"):
            shutil.rmtree(entry)
    for pack in (objects / "pack").iterdir():
        pack.unlink()
    with caplog.at_level(logging.WARNING, logger="conveyor.repos"):
        result = Operations(config, db).create_release("web")
    assert result.created and result.sha == project.head("web")
    assert "retrying once with a full fetch" in caplog.text
    assert "bad object" in caplog.text  # git's stderr is in the log
