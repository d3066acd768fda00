"""Deployments reported to GitHub through the outbox while a real pipeline runs (real git repositories,
the ``fake`` driver and checks, a conductor with its notification sender, SQLite and PostgreSQL).

The stand-in receives, for each environment, the Deployment and its statuses in order; a second
release marks the first inactive where it replaced it. While GitHub is down (502 for a while) deploys
go on at full speed, and once it is back every status arrives, still in order.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from conveyor.config import Config
from conveyor.config.resolved import GitHubConfig, NotifierConfig
from conveyor.notifiers.base import NoOptions
from conveyor.notifiers.github import DEPLOYMENT_STATES
from conveyor.notify.routing import install
from conveyor.operations import Operations
from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from conveyor.store.tables import Deployment, Event, Step
from tests.github.conftest import TOKEN
from tests.github.standin import GitHubStandIn
from tests.integration.harness import add_commit, deployment_state, wait_for
from tests.notifications.running import conductor_with_sender, outbox_states, project

ENVIRONMENTS = ("integration", "staging", "production")
PUBLIC = "https://conveyor.example.org"
CONFIG = """\
environments: [integration, staging, production]
public_url: https://conveyor.example.org
teams: {web-team: {}}
defaults:
  deploy: {driver: fake, duration: 0.05}
  checks: [{name: smoke, type: fake, count: 1}]
apps:
  web: {repo: ./repos/web, team: web-team}
  tool: {repo: ./repos/tool, team: web-team}
"""


def on_github(config: Config, standin: GitHubStandIn) -> Config:
    """``config`` with ``github:`` (a token, the stand-in's URL), ``web`` on GitHub and the github notifier:
    what the YAML ``github:`` section and ``notifiers: {github: {type: github}}`` make."""
    notifier = NotifierConfig("github", "github", NoOptions(), events=frozenset(DEPLOYMENT_STATES))
    return replace(
        config,
        github=GitHubConfig(api_url=standin.url, token=TOKEN),
        apps={**config.apps, "web": replace(config.apps["web"], github="octo/web")},
        notifiers={"github": notifier},
    )


def pipeline(tmp_path: Path, standin: GitHubStandIn, url: str) -> tuple[Config, Database]:
    config = on_github(project(tmp_path, CONFIG, ("web", "tool"), {}), standin)
    db = Database(url)
    upgrade(db)
    install(db, config)
    return config, db


def expected(sha: str) -> list[tuple[str, str, str]]:
    return [(env, sha, state) for env in ENVIRONMENTS for state in ("created", "in_progress", "success")]


def replacing(sha: str, replaced_sha: str) -> list[tuple[str, str, str]]:
    """Each environment: the new deployment, its statuses, then the one it replaced marked inactive."""
    return [
        step
        for env in ENVIRONMENTS
        for step in [
            (env, sha, "created"),
            (env, sha, "in_progress"),
            (env, sha, "success"),
            (env, replaced_sha, "inactive"),
        ]
    ]


def in_production(db: Database, app: str, release_id: int) -> bool:
    return deployment_state(db, app, "production", release_id) == "succeeded"


def test_each_deployment_and_its_statuses_reach_github_in_order(
    standin: GitHubStandIn, tmp_path: Path, db_url: str
) -> None:
    config, db = pipeline(tmp_path, standin, db_url)
    try:
        with conductor_with_sender(config, db_url):
            ops = Operations(config, db)
            first = ops.create_release("web")
            other = ops.create_release("tool")  # an app not on GitHub: GitHub hears nothing of it
            wait_for(lambda: in_production(db, "web", first.release_id), 60, "the first release in production")
            wait_for(lambda: in_production(db, "tool", other.release_id), 30, "tool in production")
            wait_for(lambda: outbox_states(db) == {"delivered": 6}, 30, "every status delivered")
            first_sha = standin.deployments[0].body["ref"]
            assert standin.timeline() == expected(first_sha)

            add_commit(tmp_path / "repos" / "web", {"CHANGES": "second\n"}, "web: second commit")
            second = ops.create_release("web")
            wait_for(lambda: in_production(db, "web", second.release_id), 60, "the second release in production")
            wait_for(lambda: outbox_states(db) == {"delivered": 12}, 30, "every status delivered")
            with db.read() as session:
                succeeded = session.scalars(
                    select(Event).where(Event.kind == "deployment.succeeded", Event.release_id == second.release_id)
                ).all()
                first_deployments = {
                    d.environment: d.id
                    for d in session.scalars(select(Deployment).where(Deployment.release_id == first.release_id))
                }
            # what each replaced, in the event's data: the first release's deployment in that environment
            assert {e.environment: e.payload["replaced"]["deployment_id"] for e in succeeded} == first_deployments
            assert all(e.payload["replaced"]["release"]["sha"] == first.sha for e in succeeded)
        timeline = standin.timeline()[len(expected(first_sha)) :]
        second_sha = standin.deployments[-1].body["ref"]
        assert second_sha != first_sha
        assert timeline == replacing(second_sha, first_sha)
        assert {d.repo for d in standin.deployments} == {"octo/web"}
        production = [d for d in standin.deployments if d.body["environment"] == "production"]
        assert all(d.body["production_environment"] for d in production)
        log_urls = {s["log_url"] for d in standin.deployments for s in d.statuses if s["state"] != "inactive"}
        assert all(url.startswith(f"{PUBLIC}/api/deployments/") for url in log_urls)
    finally:
        db.dispose()


def test_a_github_outage_slows_no_deploy_and_the_statuses_arrive_after_it(
    standin: GitHubStandIn, tmp_path: Path, db_url: str
) -> None:
    """A scaled-down outage (GitHub answers 502 for ``outage`` seconds) while two releases, one after the
    other, go through every environment: the deploys do not wait for it; after it, every status
    arrives, in the order it happened (the first release's ``success`` before the second's ``inactive``
    for it, though their notifications are retried separately)."""
    outage = 10.0
    config, db = pipeline(tmp_path, standin, db_url)
    try:
        with conductor_with_sender(config, db_url):
            standin.outage_until = time.monotonic() + outage
            started = time.monotonic()
            ops = Operations(config, db)
            first = ops.create_release("web")
            wait_for(lambda: in_production(db, "web", first.release_id), 60, "the first release in production")
            add_commit(tmp_path / "repos" / "web", {"CHANGES": "second\n"}, "web: second commit")
            second = ops.create_release("web")
            wait_for(lambda: in_production(db, "web", second.release_id), 60, "the second release in production")
            took = time.monotonic() - started
            assert took < outage, f"the pipelines took {took:.1f}s, as long as GitHub's outage"
            assert standin.timeline() == []  # nothing got through meanwhile, though it was tried
            assert any(r.status == 502 for r in standin.requests())
            with db.read() as session:
                steps = session.scalars(select(Step)).all()
            waits = [(s.started_at - s.due_at).total_seconds() for s in steps if s.started_at]
            assert len(waits) == 12 and max(waits) < 1.0, waits  # no step waited on GitHub
            wait_for(lambda: outbox_states(db) == {"delivered": 12}, 60, "every status delivered after the outage")
        assert standin.timeline() == expected(first.sha) + replacing(second.sha, first.sha)
        after = min(r.at for r in standin.requests() if r.status == 201)
        assert after >= standin.outage_until
    finally:
        db.dispose()
