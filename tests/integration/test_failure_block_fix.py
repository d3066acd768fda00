"""A release that fails its staging check blocks the line; a newer release that passes lifts it.

Release 1 goes everywhere; release 2 fails the staging check (a fake check marked to fail that SHA,
configured for staging only), which fails the deployment and puts a block Hold on (app, staging): release
2 never reaches production, and ``why`` says so. Release 3, the fix, passes staging, lifts the block
("fixed forward") and reaches production. An operator may also lift a block by hand, with a reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor import views
from conveyor.config import Config
from conveyor.domain.model import HoldKind
from conveyor.errors import OperationError
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.tables import Event, Hold
from tests.integration.harness import (
    add_commit,
    deployment_state,
    load,
    make_app_repo,
    run_until_idle,
    write_config,
)

ENVS = ("integration", "staging", "production")

CONFIG = """\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: 0.05}}
  checks: [{{name: smoke, type: fake, count: 1}}]
apps:
  web:
    repo: ./repos/web
    team: publishing
    environments:
      staging:
        checks: [{{name: smoke, type: fake, count: 2, interval: 0.05, fail_versions: ["{bad}"]}}]
"""


class Scenario:
    """Three commits of ``web``; the second is marked to fail its staging check."""

    def __init__(self, root: Path, db_url: str) -> None:
        repo = root / "repos" / "web"
        self.shas = [make_app_repo(repo, {"app.txt": "1\n"}, "release one")]
        self.shas.append(add_commit(repo, {"app.txt": "2\n"}, "release two: breaks the smoke test"))
        self.shas.append(add_commit(repo, {"app.txt": "3\n"}, "release three: the fix"))
        self.config: Config = load(write_config(root, CONFIG.format(bad=self.shas[1])))
        self.url = db_url
        self.db = Database(db_url)
        self.ops = Operations(self.config, self.db)
        self.labels: dict[int, str] = {}

    def release(self, n: int) -> int:
        result = self.ops.create_release("web", self.shas[n - 1])
        assert result.created
        self.labels[result.release_id] = result.label
        return result.release_id

    def run(self) -> None:
        run_until_idle(self.config, self.url, concurrency=8, timeout=60)

    def block(self) -> Hold | None:
        with self.db.read() as session:
            return session.scalars(
                select(Hold).where(Hold.app == "web", Hold.kind == HoldKind.BLOCK.value).order_by(Hold.id)
            ).first()

    def events(self, kind: str) -> list[Event]:
        with self.db.read() as session:
            return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


@pytest.fixture
def scenario(tmp_path: Path, db_url: str) -> Iterator[Scenario]:
    s = Scenario(tmp_path, db_url)
    yield s
    s.db.dispose()


def fail_release_two(s: Scenario) -> tuple[int, int]:
    r1 = s.release(1)
    s.run()
    assert [deployment_state(s.db, "web", env, r1) for env in ENVS] == ["succeeded"] * 3
    r2 = s.release(2)
    s.run()
    return r1, r2


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_failed_check_blocks_the_line_until_a_fix_passes(scenario: Scenario) -> None:
    s = scenario
    r1, r2 = fail_release_two(s)

    assert deployment_state(s.db, "web", "integration", r2) == "succeeded"
    assert deployment_state(s.db, "web", "staging", r2) == "failed"
    assert deployment_state(s.db, "web", "production", r2) is None, "a failed release was promoted"

    hold = s.block()
    assert hold is not None and hold.lifted_at is None
    assert (hold.app, hold.environment, hold.release_id) == ("web", "staging", r2)
    assert hold.evidence["step"] == "smoke" and hold.evidence["kind"] == "check"
    assert any(m["phase"] == "fail" for m in hold.evidence["measurements"]), hold.evidence
    assert "failed check 'smoke' in staging" in hold.reason

    why = views.why(s.db, s.config, "web")
    staging = why["environments"]["staging"]
    assert staging["state"] == "failed"
    assert staging["failed_step"]["name"] == "smoke"
    assert "blocked since" in staging["explanation"] and "smoke" in staging["explanation"]
    assert [h["environment"] for h in why["holds"]] == ["staging"]
    production = why["environments"]["production"]
    assert production["live"] == s.labels[r1]  # production keeps release 1
    assert "blocked" in production["explanation"] and "staging" in production["explanation"], production

    r3 = s.release(3)
    s.run()
    assert [deployment_state(s.db, "web", env, r3) for env in ENVS] == ["succeeded"] * 3
    hold = s.block()
    assert hold is not None and hold.lifted_at is not None
    assert hold.lifted_by == "conveyor" and hold.lift_reason and "fixed forward" in hold.lift_reason
    lifted = s.events("hold.lifted")
    assert len(lifted) == 1 and "fixed forward" in lifted[0].message
    assert lifted[0].payload["hold_id"] == hold.id
    assert deployment_state(s.db, "web", "production", r2) is None, "release 2 reached production after all"
    assert views.why(s.db, s.config, "web")["holds"] == []


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_unblock_lifts_the_block_with_a_reason_and_an_actor(scenario: Scenario) -> None:
    s = scenario
    _, r2 = fail_release_two(s)
    hold = s.block()
    assert hold is not None and hold.lifted_at is None

    with pytest.raises(OperationError, match="reason is required"):
        s.ops.unblock("web", "staging", "   ", actor="release-manager")
    with pytest.raises(OperationError, match="not blocked in production"):
        s.ops.unblock("web", "production", "nothing there", actor="release-manager")

    reason = "flaky smoke test, verified by hand"
    assert s.ops.unblock("web", "staging", reason, actor="release-manager") == 1
    hold = s.block()
    assert hold is not None and hold.lifted_at is not None
    assert (hold.lifted_by, hold.lift_reason) == ("release-manager", reason)
    (event,) = s.events("hold.lifted")
    assert (event.actor, event.message, event.environment) == ("release-manager", reason, "staging")

    with pytest.raises(OperationError, match="not blocked") as raised:
        s.ops.unblock("web", "staging", reason, actor="release-manager")
    assert raised.value.code == "conflict"

    # Lifting the block does not send the failed release on by itself (invariant 5).
    s.run()
    assert deployment_state(s.db, "web", "production", r2) is None
