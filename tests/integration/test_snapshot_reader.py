"""The planner's snapshots read again only what changed and always equal a snapshot read whole.

A whole pipeline runs (a conflict group, a manual tier that waits with a decision and no change of state,
a release that fails and blocks, a freeze on every app lifted again); after every pass's snapshot the same
moment is read whole and compared.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import select, update

from conveyor.domain.snapshot import Snapshot
from conveyor.engine.conductor import Conductor
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.snapshot import SnapshotReader, app_policies, build_snapshot
from conveyor.store.tables import Decision, Deployment, Hold
from tests.integration.harness import add_commit, load, make_app_repo, write_config

CONFIG = """\
environments: [integration, staging, production]
teams: {{web: {{notify: []}}}}
groups: {{shared-db: {{}}}}
defaults:
  deploy: {{driver: fake, duration: 0.02}}
  checks: []
apps:
  frontend: {{repo: ./repos/frontend, team: web, groups: [shared-db]}}
  backend: {{repo: ./repos/backend, team: web, groups: [shared-db]}}
  search: {{repo: ./repos/search, team: web}}
  billing: {{repo: ./repos/billing, team: web, tier: manual, reason: invoices are checked by hand}}
  mailer:
    repo: ./repos/mailer
    team: web
    environments:
      staging:
        checks: [{{name: smoke, type: fake, count: 1, fail_versions: ["{broken}"]}}]
"""
APPS = ("frontend", "backend", "search", "billing", "mailer")


def comparable(snap: Snapshot) -> tuple[object, ...]:
    return (
        snap.open_deployments,
        snap.placements,
        snap.deployed_releases,
        snap.holds,
        snap.locks,
        snap.decision_fingerprints,
    )


class Checked(SnapshotReader):
    """A reader that, after every snapshot, reads the same database whole and keeps any difference."""

    def __init__(self, db: Database, config: object, policies: object) -> None:
        super().__init__(db, config, policies)  # type: ignore[arg-type]
        self.differences: list[str] = []
        self.compared = 0

    def load(self) -> Snapshot:
        snap = super().load()
        with self.db.read() as session:
            whole = build_snapshot(session, self.config, self.policies)
        self.compared += 1
        if comparable(snap) != comparable(whole):
            self.differences.append(f"pass {self.compared}: {comparable(snap)!r} != {comparable(whole)!r}")
        return snap


def _project(tmp_path: Path, url: str) -> tuple[object, Operations, Database, str]:
    first = {app: make_app_repo(tmp_path / "repos" / app) for app in APPS}
    broken = add_commit(tmp_path / "repos" / "mailer", {"mail.txt": "broken\n"}, "breaks the smoke check")
    config = load(write_config(tmp_path, CONFIG.format(broken=broken)))
    db = Database(url)
    return config, Operations(config, db), db, first["mailer"]


def _run(config: object, db: Database) -> Checked:
    conductor = Conductor(config, db, poll_interval=0.01, grace_seconds=5)  # type: ignore[arg-type]
    reader = Checked(db, config, conductor.policies)
    conductor.snapshots = reader
    conductor.run(threading.Event(), exit_when_idle=True)
    return reader


@pytest.mark.timeout(120)
def test_every_snapshot_equals_one_read_whole(tmp_path: Path, db_url: str) -> None:
    config, ops, db, mailer_first = _project(tmp_path, db_url)
    try:
        for app in APPS:
            ops.create_release(app, mailer_first if app == "mailer" else None, actor="test")
        first = _run(config, db)
        ops.create_release("mailer", actor="test")  # fails its check in staging: a block
        first = _run(config, db)
        with db.read() as session:
            blocks = session.scalars(select(Hold.app).where(Hold.kind == "block")).all()
            waits = session.scalars(select(Decision.app).where(Decision.rule == "ManualTierWaitsForPromotion")).all()
        assert blocks == ["mailer"] and waits == ["billing"]
        assert first.differences == []
        assert first.reads["apps"] > 0, first.reads  # it did read only what changed, and more than once

        # a freeze on every app is an Event about no app: the next snapshot is read whole
        hold = ops.freeze(None, "production", reason="release party", actor="test")
        for app in ("frontend", "search"):
            add_commit(tmp_path / "repos" / app, {"more.txt": "more\n"}, "more")
            ops.create_release(app, actor="test")
        second = _run(config, db)
        ops.unfreeze(hold, reason="party over", actor="test")
        third = _run(config, db)
        assert second.differences == [] and third.differences == []
    finally:
        db.dispose()


def test_only_the_apps_named_by_new_events_are_read_again(tmp_path: Path, db_url: str) -> None:
    config, ops, db, _ = _project(tmp_path, db_url)
    try:
        reader = SnapshotReader(db, config, app_policies(config))  # type: ignore[arg-type]
        reader.load()
        assert reader.reads == {"whole": 1, "apps": 0}
        release = ops.create_release("search", actor="test")  # one Event about search
        snap = reader.load()
        assert reader.reads == {"whole": 1, "apps": 1}
        assert [d.release_id for d in snap.open_deployments if d.app == "search"] == [release.release_id]
        reader.load()  # nothing new: nothing read again
        assert reader.reads == {"whole": 1, "apps": 1}
        reader.touch(["billing"])  # a decision recorded without an Event: billing is read again
        reader.load()
        assert reader.reads == {"whole": 1, "apps": 2}
        reader.touch([None])  # an intent about no known app: everything
        reader.load()
        assert reader.reads == {"whole": 2, "apps": 2}
    finally:
        db.dispose()


def test_everything_is_read_again_at_least_every_few_seconds(tmp_path: Path, db_url: str) -> None:
    """A change written without its Event (around conveyor) is picked up within ``FULL_READ_SECONDS``."""
    config, ops, db, _ = _project(tmp_path, db_url)
    try:
        clock = [100.0]
        reader = SnapshotReader(db, config, app_policies(config), monotonic=lambda: clock[0])  # type: ignore[arg-type]
        ops.create_release("search", actor="test")
        assert [d.app for d in reader.load().open_deployments] == ["search"]
        with db.write() as session:  # no Event: invisible to a read of the changed apps
            session.execute(update(Deployment).values(state="superseded"))
        clock[0] += SnapshotReader.FULL_READ_SECONDS - 0.1
        assert [d.app for d in reader.load().open_deployments] == ["search"]
        clock[0] += 0.1
        assert reader.load().open_deployments == ()
        assert reader.reads == {"whole": 2, "apps": 0}
    finally:
        db.dispose()
