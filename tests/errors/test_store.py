"""The error store on SQLite and PostgreSQL: grouping into issues, counts exact over raw events and exact to
the minute after pruning, new issues and spikes recorded as events that notify the owning team."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from conveyor.domain.error_groups import group
from conveyor.domain.error_spikes import SpikeRule
from conveyor.error_intake.writer import EventWriter
from conveyor.notify.routing import Router
from conveyor.store.database import Database
from conveyor.store.error_events import (
    IncomingEvent,
    Project,
    count_events,
    dsn,
    issues,
    project_for,
    prune,
    prune_cutoffs,
    record_batch,
)
from conveyor.store.tables import Deployment, ErrorEvent, Event, Outbox, Placement, Release

T0 = datetime(2026, 11, 29, 9, 0, 10, tzinfo=UTC)
RULE = SpikeRule(min_events=5, factor=3.0, baseline=3600.0, cooldown=3600.0)


def failure(kind: str = "ValueError", function: str = "handler", release: str | None = "v1") -> dict[str, Any]:
    frames = [{"module": "app.views", "function": function, "in_app": True, "lineno": 3}]
    return {
        "event_id": "0" * 32,
        "release": release,
        "exception": {"values": [{"type": kind, "value": "boom", "stacktrace": {"frames": frames}}]},
    }


def incoming(project: Project, event: dict[str, Any]) -> IncomingEvent:
    return IncomingEvent(project, event["event_id"], group(event), event.get("release"), json.dumps(event))


def record(db: Database, project: Project, events: list[dict[str, Any]], at: datetime, rule: SpikeRule = RULE) -> None:
    with db.write() as session:
        record_batch(session, [incoming(project, e) for e in events], now=at, spike=rule)


def project(db: Database, app: str = "web", environment: str = "staging") -> Project:
    with db.write() as session:
        return project_for(session, app, environment, T0)


def count(db: Database, start: datetime, end: datetime, release: str | None = None, app: str = "web") -> int:
    with db.read() as session:
        return count_events(session, app=app, environment="staging", start=start, end=end, release=release)


def events_of(db: Database, kind: str) -> list[Event]:
    with db.read() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def test_a_project_keeps_its_key_and_its_dsn_carries_the_public_urls_path(db: Database) -> None:
    first, again, other = project(db), project(db), project(db, environment="production")
    assert first == again and other.id != first.id and other.public_key != first.public_key
    assert len(first.public_key) == 32
    assert dsn("https://deploy.example.com/conveyor", first) == (
        f"https://{first.public_key}@deploy.example.com/conveyor/{first.id}"
    )
    assert dsn("http://127.0.0.1:8080", first) == f"http://{first.public_key}@127.0.0.1:8080/{first.id}"


def test_events_are_grouped_into_issues_with_first_and_last_seen(db: Database) -> None:
    web = project(db)
    record(db, web, [failure(), failure(), failure("KeyError")], T0)
    record(db, web, [failure(release="v2"), failure(function="other")], T0 + timedelta(minutes=5))
    with db.read() as session:
        found = {(i.title, i.culprit): i for i in issues(session, "web", None, T0 - timedelta(hours=1))}
    assert {key: i.total_events for key, i in found.items()} == {
        ("ValueError: boom", "app.views in handler"): 3,
        ("KeyError: boom", "app.views in handler"): 1,
        ("ValueError: boom", "app.views in other"): 1,
    }
    value_error = found[("ValueError: boom", "app.views in handler")]
    assert (value_error.first_seen, value_error.last_seen) == (T0, T0 + timedelta(minutes=5))
    assert (value_error.first_release, value_error.last_release) == ("v1", "v2")
    with db.read() as session:
        recent = issues(session, "web", "staging", T0 + timedelta(minutes=5))
    assert sorted(i.title for i in recent) == ["ValueError: boom", "ValueError: boom"]
    assert [i.events for i in recent] == [1, 1]


def test_counts_are_exact_over_raw_events_and_exact_to_the_minute_once_pruned(db: Database) -> None:
    web, api = project(db), project(db, "api")
    record(db, web, [failure(), failure(release="v2")], T0)  # 09:00:10
    record(db, web, [failure()], T0 + timedelta(seconds=40))  # 09:00:50
    record(db, web, [failure(release="v2")] * 3, T0 + timedelta(minutes=2))  # 09:02:10
    record(db, api, [failure()] * 7, T0)
    start, end = T0 + timedelta(seconds=30), T0 + timedelta(minutes=10)
    assert count(db, T0, end) == 6
    assert count(db, start, end) == 4  # exact: the two events at 09:00:10 are before 09:00:40
    assert count(db, T0, end, release="v2") == 4
    assert count(db, T0, end, release="v9") == 0
    assert count(db, end, end + timedelta(hours=1)) == 0
    assert count(db, T0, end, app="nothing") == 0
    # raw events of 09:00 pruned: their minute is counted whole, later minutes stay exact
    with db.write() as session:
        prune(session, raw_before=T0.replace(second=0) + timedelta(minutes=1), counts_before=T0 - timedelta(days=1))
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(ErrorEvent)) == 3  # of web at 09:02
    assert count(db, start, end) == 6
    assert count(db, start, end, release="v2") == 4
    assert count(db, T0 + timedelta(minutes=2), end) == 3
    with db.write() as session:  # counts older than their retention go too
        prune(session, raw_before=T0 + timedelta(hours=1), counts_before=T0 + timedelta(minutes=1))
    assert count(db, T0 - timedelta(hours=1), end) == 3


def test_prune_cutoffs_fall_on_minute_boundaries() -> None:
    raw, counts = prune_cutoffs(T0, 14 * 86400.0, 90 * 86400.0)
    assert raw == datetime(2026, 11, 15, 9, 0, tzinfo=UTC)
    assert counts == datetime(2026, 8, 31, 9, 0, tzinfo=UTC)


def test_a_new_issue_notifies_the_team_and_says_when_the_release_just_deployed_brought_it(db: Database) -> None:
    db.router = Router(
        team_of={"web": "publishing"},
        team_notifiers={"publishing": ("chat",)},
        kinds={"chat": frozenset({"error.new_issue", "error.spike"})},
    )
    with db.write() as session:
        release = Release(app="web", sha="a" * 40, label="v2", ref="main", commits=[], created_at=T0, created_by="test")
        session.add(release)
        session.flush()
        session.add(
            Placement(
                app="web",
                environment="staging",
                release_id=release.id,
                deployment_id=_deployment(session, release.id),
                health="healthy",
                since=T0,
                updated_at=T0,
            )
        )
    web = project(db)
    record(db, web, [failure(release="v1")], T0)
    record(db, web, [failure(release="v1"), failure("KeyError", release="v2")], T0 + timedelta(seconds=1))
    new = events_of(db, "error.new_issue")
    assert [e.payload["title"] for e in new] == ["ValueError: boom", "KeyError: boom"]
    assert [e.payload["release_just_deployed"] for e in new] == [False, True]
    assert "the release just deployed" in new[1].message and new[1].release_id is not None
    assert new[0].app == "web" and new[0].environment == "staging"
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Outbox).where(Outbox.notifier == "chat")) == 2


def test_a_release_named_in_sentrys_app_at_version_form_is_the_apps_release(db: Database) -> None:
    """An SDK told ``release="web@v2"`` (the check's ``release_prefix: "{app}@"``) names release v2 of web;
    a label that really is ``web@v1`` wins over the release ``v1``; another app's prefix names nothing."""
    with db.write() as session:
        made = {}
        for n, label in enumerate(["v1", "v2", "web@v1"]):
            release = Release(
                app="web", sha=f"{n}" * 40, label=label, ref="main", commits=[], created_at=T0, created_by="test"
            )
            session.add(release)
            session.flush()
            made[label] = release.id
        session.add(
            Placement(
                app="web",
                environment="staging",
                release_id=made["v2"],
                deployment_id=_deployment(session, made["v2"]),
                health="healthy",
                since=T0,
                updated_at=T0,
            )
        )
    web = project(db)
    record(db, web, [failure("KeyError", release="web@v2")], T0)
    record(db, web, [failure("TypeError", release="web@v1")], T0)
    record(db, web, [failure("OSError", release="api@v2")], T0)
    record(db, web, [failure("EOFError", release=f"web@{'1' * 12}")], T0)
    told = {e.payload["title"]: e for e in events_of(db, "error.new_issue")}
    assert told["KeyError: boom"].release_id == made["v2"]
    assert told["KeyError: boom"].payload["release_just_deployed"] is True
    assert "first seen in web@v2, the release just deployed" in told["KeyError: boom"].message
    assert told["TypeError: boom"].release_id == made["web@v1"]
    assert told["OSError: boom"].release_id is None
    assert told["EOFError: boom"].release_id == made["v2"]  # a SHA prefix after the app's name


def test_a_new_issue_of_the_release_still_deploying_is_brought_by_the_release_just_deployed(db: Database) -> None:
    """The app reports from the moment its process starts, before its deploy step is recorded as done and
    the place's current release changes: v2 deploying in staging while v1 is current there brought the
    issue; v3, deploying in production only, did not bring staging's."""
    with db.write() as session:
        made = {}
        for n, label in enumerate(["v1", "v2", "v3"]):
            release = Release(
                app="web", sha=f"{n}" * 40, label=label, ref="main", commits=[], created_at=T0, created_by="test"
            )
            session.add(release)
            session.flush()
            made[label] = release.id
        session.add(
            Placement(
                app="web",
                environment="staging",
                release_id=made["v1"],
                deployment_id=_deployment(session, made["v1"]),
                health="healthy",
                since=T0,
                updated_at=T0,
            )
        )
        _deployment(session, made["v2"], state="deploying")
        other = session.get_one(Deployment, _deployment(session, made["v3"], state="deploying"))
        other.environment = "production"
    web = project(db)
    record(db, web, [failure("KeyError", release="v2"), failure("OSError", release="v3")], T0)
    told = {e.payload["title"]: e for e in events_of(db, "error.new_issue")}
    assert told["KeyError: boom"].release_id == made["v2"]
    assert told["KeyError: boom"].payload["release_just_deployed"] is True
    assert told["OSError: boom"].release_id == made["v3"]
    assert told["OSError: boom"].payload["release_just_deployed"] is False


def _deployment(session: Any, release_id: int, state: str = "succeeded") -> int:
    d = Deployment(
        release_id=release_id,
        app="web",
        environment="staging",
        state=state,
        queued_at=T0,
        updated_at=T0,
        created_by="test",
    )
    session.add(d)
    session.flush()
    return int(d.id)


def test_a_spike_is_announced_once_per_cooldown(db: Database) -> None:
    web = project(db)
    base = T0.replace(second=0) - timedelta(minutes=30)
    for minute in range(30):  # a steady 1 event a minute: a baseline of 0.5/min over the hour
        record(db, web, [failure()], base + timedelta(minutes=minute))
    record(db, web, [failure()] * 4, T0)
    assert events_of(db, "error.spike") == []  # 4 this minute: below min_events
    record(db, web, [failure()] * 2, T0 + timedelta(seconds=5))
    spikes = events_of(db, "error.spike")
    assert len(spikes) == 1 and spikes[0].payload["events_this_minute"] == 6
    assert spikes[0].payload["baseline_per_minute"] == 0.5
    record(db, web, [failure()] * 20, T0 + timedelta(minutes=1))  # still a spike, within the cooldown
    assert len(events_of(db, "error.spike")) == 1
    record(db, web, [failure()] * 400, T0 + timedelta(hours=1, minutes=2))  # after it: far above baseline
    assert len(events_of(db, "error.spike")) == 2


def test_a_busy_issue_at_its_usual_rate_is_no_spike(db: Database) -> None:
    web = project(db)
    base = T0.replace(second=0) - timedelta(minutes=60)
    for minute in range(60):
        record(db, web, [failure()] * 10, base + timedelta(minutes=minute))
    record(db, web, [failure()] * 12, T0)
    # only its very first minute, when it had no baseline, was a spike
    assert [e.at for e in events_of(db, "error.spike")] == [base]


def test_the_writer_commits_many_requests_in_one_transaction_and_answers_each(db: Database) -> None:
    web = project(db)
    writer = EventWriter(db, RULE, idle=0.2)
    futures = [writer.submit([incoming(web, failure(function=f"f{n % 7}"))]) for n in range(200)]
    for future in futures:
        assert future.result(timeout=30) is None
    assert count(db, T0 - timedelta(days=1), datetime.now(UTC) + timedelta(minutes=1)) == 200
    assert writer.batches < 200


def test_the_retention_chore_prunes_by_the_configured_retentions(db: Database) -> None:
    from dataclasses import replace
    from pathlib import Path

    from conveyor.config.resolved import Config, ErrorsConfig
    from conveyor.engine.chores import chores_for
    from conveyor.error_intake.retention import ErrorRetention

    config = Config(Path("conveyor.yaml"), ("staging",), {}, {}, {}, Path("."), db.url)
    config = replace(config, errors=ErrorsConfig(retention=86400.0, counts_retention=2 * 86400.0))
    assert "error-retention" in [chore.name for chore in chores_for(config, db)]
    web = project(db)
    for days in (3, 1.5, 0):
        record(db, web, [failure()], T0 - timedelta(days=days))
    ErrorRetention(config, db, clock=lambda: T0)()
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(ErrorEvent)) == 1
    assert count(db, T0 - timedelta(days=10), T0 + timedelta(minutes=1)) == 2  # the 3-day-old minute is gone


def test_issues_not_seen_within_the_counts_retention_are_pruned_with_their_counts(db: Database) -> None:
    web = project(db)
    record(db, web, [failure("OldError")], T0 - timedelta(days=3))
    record(db, web, [failure("KeptError")], T0 - timedelta(days=3))
    record(db, web, [failure("KeptError")], T0 - timedelta(hours=1))  # seen again: kept
    with db.write() as session:
        # the old issue's raw event is kept here (raw retention longer than the counts'), so it stays
        prune(session, raw_before=T0 - timedelta(days=4), counts_before=T0 - timedelta(days=2))
    with db.read() as session:
        assert sorted(i.title for i in issues(session, "web", None, T0 - timedelta(days=10))) == [
            "KeptError: boom",
            "OldError: boom",
        ]
    with db.write() as session:
        prune(session, raw_before=T0 - timedelta(days=2), counts_before=T0 - timedelta(days=2))
    with db.read() as session:
        kept = issues(session, "web", None, T0 - timedelta(days=10))
    assert [(i.title, i.total_events) for i in kept] == [("KeptError: boom", 2)]
    # the same error again is a new issue, first seen now
    record(db, web, [failure("OldError")], T0)
    assert len(events_of(db, "error.new_issue")) == 3
    with db.read() as session:
        again = {i.title: i for i in issues(session, "web", None, T0 - timedelta(days=10))}
    assert (again["OldError: boom"].first_seen, again["OldError: boom"].total_events) == (T0, 1)


def test_the_writer_writes_a_batch_again_when_its_issue_was_pruned_meanwhile(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import conveyor.store.error_events as store

    web = project(db)
    record(db, web, [failure("OldError")], T0 - timedelta(days=3))
    real = store._issues_for
    calls: list[int] = []

    def found_then_pruned(session: Any, events: Any, now: datetime) -> Any:
        calls.append(1)
        if len(calls) > 1:
            return real(session, events, now)
        with db.read() as reading:  # the issue is found...
            found = real(reading, events, now)
        with db.write() as other:  # ...and deleted by another process's retention before its event lands
            prune(other, raw_before=T0, counts_before=T0)
        return found

    monkeypatch.setattr(store, "_issues_for", found_then_pruned)
    writer = EventWriter(db, RULE, idle=0.2, clock=lambda: T0)
    assert writer.submit([incoming(web, failure("OldError"))]).result(timeout=30) is None
    assert len(calls) == 2
    with db.read() as session:
        again = issues(session, "web", None, T0 - timedelta(days=10))
    assert [(i.title, i.first_seen, i.total_events) for i in again] == [("OldError: boom", T0, 1)]
