"""The poller's bookkeeping: each app at its own interval, one worker per turn, failures logged once per
change of state, a head released once. The remote is a stand-in (``head_of``); the repositories, the
release and the store are real (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.config.resolved import Config
from conveyor.repos import GitError
from conveyor.sources.poll import Poller
from conveyor.store.database import Database
from conveyor.store.polls import poll_records, take_turn
from conveyor.store.tables import Release
from tests.integration.harness import add_commit, load, make_app_repo, write_config

START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Remote:
    """Stands in for `git ls-remote`: answers each repo's current head, or fails for the repos in ``down``."""

    def __init__(self, heads: dict[str, str]) -> None:
        self.heads = dict(heads)
        self.down: set[str] = set()
        self.asked: list[str] = []

    def __call__(self, url: str, branch: str, timeout: float) -> str | None:
        name = Path(url).name
        self.asked.append(name)
        if name in self.down:
            raise GitError(["ls-remote", url], "fatal: unable to connect to 127.0.0.1")
        return self.heads.get(name)


@pytest.fixture
def repos(tmp_path: Path) -> dict[str, str]:
    return {name: make_app_repo(tmp_path / "repos" / name) for name in ("fast", "slow", "still")}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(
        write_config(
            tmp_path,
            """\
environments: [integration]
teams: {core: {}}
defaults:
  deploy: {driver: fake}
  poll: 10s
apps:
  fast: {repo: ./repos/fast, team: core}
  slow: {repo: ./repos/slow, team: core, poll: 1m}
  still: {repo: ./repos/still, team: core, poll: none}
""",
        )
    )


def releases(db: Database, app: str) -> list[tuple[str, str]]:
    with db.read() as session:
        return [
            (r.sha, r.created_by)
            for r in session.scalars(select(Release).where(Release.app == app).order_by(Release.id))
        ]


def poller(config: Config, db: Database, clock: Clock, remote: Remote, owner: str = "one") -> Poller:
    return Poller(config, db, clock=clock, head_of=remote, owner=owner, background=False)


def test_each_app_is_polled_at_its_own_interval(config: Config, db: Database, repos: dict[str, str]) -> None:
    clock, remote = Clock(), Remote(repos)
    polls = poller(config, db, clock, remote)
    assert set(polls.watches) == {"fast", "slow"}  # `poll: none` turned the default off
    assert polls.run() is True  # both heads are new: released
    assert sorted(remote.asked) == ["fast", "slow"]
    for seconds in (5, 5, 5, 5, 40):  # t = 5, 10, 15, 20, 60
        clock.advance(seconds)
        polls.run()
    assert remote.asked.count("fast") == 4  # at 0, 10, 20 and 60: not at 5 or 15
    assert remote.asked.count("slow") == 2  # at 0 and 60


def test_a_new_head_is_released_once_by_the_poll_actor(config: Config, db: Database, repos: dict[str, str]) -> None:
    clock, remote = Clock(), Remote(repos)
    polls = poller(config, db, clock, remote)
    polls.run()
    assert releases(db, "fast") == [(repos["fast"], "poll")]
    clock.advance(10)
    assert polls.run() is False  # the same head: nothing new
    assert releases(db, "fast") == [(repos["fast"], "poll")]

    newer = add_commit(Path(config.app("fast").repo), {"a": "2"}, "second")
    remote.heads["fast"] = newer
    clock.advance(10)
    assert polls.run() is True
    assert [sha for sha, _ in releases(db, "fast")] == [repos["fast"], newer]
    assert poll_records(db)["fast"].head == newer

    remote.heads["fast"] = repos["fast"]  # force-pushed back to the first release: it exists, nothing made
    clock.advance(10)
    assert polls.run() is False
    assert len(releases(db, "fast")) == 2
    assert poll_records(db)["fast"].head == repos["fast"]


def test_a_failing_remote_is_logged_once_per_change_and_stops_no_other_app(
    config: Config, db: Database, repos: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    clock, remote = Clock(), Remote(repos)
    remote.down.add("fast")
    polls = poller(config, db, clock, remote)
    with caplog.at_level(logging.INFO, logger="conveyor.sources.poll"):
        polls.run()
        for _ in range(3):
            clock.advance(10)
            polls.run()
        remote.down.clear()
        clock.advance(10)
        polls.run()
        clock.advance(10)
        polls.run()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("polling fast fails: git ls-remote") and "unable to connect" in warnings[0]
    assert warnings[1] == "polling fast answers again (it failed from 2026-11-29 09:00:00 UTC)"
    assert [sha for sha, _ in releases(db, "slow")] == [repos["slow"]]  # polled and released meanwhile
    record = poll_records(db)["fast"]
    assert record.failures == 4 and record.error is None and record.failing_since is None
    assert record.head == repos["fast"] and record.answered_at == clock.now


def test_a_failure_is_recorded_for_why(config: Config, db: Database, repos: dict[str, str]) -> None:
    clock, remote = Clock(), Remote(repos)
    remote.down.add("slow")
    poller(config, db, clock, remote).run()
    record = poll_records(db)["slow"]
    assert record.failing_since == START and record.failures == 1 and record.head is None
    assert record.error is not None and "unable to connect" in record.error


def test_a_missing_branch_is_a_failure(config: Config, db: Database, repos: dict[str, str]) -> None:
    clock, remote = Clock(), Remote({"slow": repos["slow"]})  # fast: no such branch on the remote
    poller(config, db, clock, remote).run()
    record = poll_records(db)["fast"]
    assert record.error is not None and record.error == "unknown ref 'main': the remote has no such branch"
    assert releases(db, "fast") == []


def test_two_workers_poll_a_remote_once_per_interval(config: Config, db: Database, repos: dict[str, str]) -> None:
    clock, remote = Clock(), Remote(repos)
    one, two = poller(config, db, clock, remote, "one"), poller(config, db, clock, remote, "two")
    for _ in range(6):  # t = 0, 5, ..., 25
        one.run()
        two.run()
        clock.advance(5)
    assert remote.asked.count("fast") == 3  # at 0, 10 and 20, by whichever worker came first
    assert remote.asked.count("slow") == 1
    assert len(releases(db, "fast")) == 1


def test_a_turn_is_taken_by_one_worker(db: Database) -> None:
    assert take_turn(db, "web", START, 60, "one").mine
    lost = take_turn(db, "web", START + timedelta(seconds=30), 60, "two")
    assert not lost.mine and lost.taken_at == START
    assert take_turn(db, "web", START + timedelta(seconds=60), 60, "two").mine


def test_workers_racing_for_a_turn_get_one_between_them(db_url: str) -> None:
    handles = [Database(db_url) for _ in range(6)]
    barrier = threading.Barrier(len(handles))
    won: list[bool] = []

    def race(handle: Database, n: int) -> None:
        barrier.wait()
        won.append(take_turn(handle, "web", START, 60, f"worker-{n}").mine)

    threads = [threading.Thread(target=race, args=(h, n)) for n, h in enumerate(handles)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for handle in handles:
        handle.dispose()
    assert sorted(won) == [False] * 5 + [True]
