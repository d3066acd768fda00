"""The deployment transitions a busy pass applies by the hundred: Start, Succeed, Promote, Note, each
for a whole group of intents at once.

They are also the orchestrator's handlers for a single one of them (a group of one), so there is one
implementation of each: a handful of statements for the whole group (one compare-and-set UPDATE ...
RETURNING, batched INSERTs) instead of several statements per intent. The orchestrator records the
intents' decisions, runs a group inside a savepoint and, if anything goes wrong, undoes it and applies
the intents one at a time, so each still happens whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from conveyor.domain.decisions import Decision as DecisionRecord
from conveyor.domain.decisions import Note, Promote, Start, Succeed
from conveyor.domain.holds import Attempt, stopping
from conveyor.domain.model import DeploymentState, HoldKind, Override, StepKind, StepState
from conveyor.engine import placements
from conveyor.store.durations import count_ended
from conveyor.store.events import (
    About,
    deployment_events,
    latest_fingerprints,
    lift_hold,
    record_decisions,
    record_events,
)
from conveyor.store.snapshot import load_holds
from conveyor.store.tables import (
    Deployment,
    Hold,
    Lock,
    Placement,
    Release,
    Step,
    among,
    execute_rows,
    insert_rows,
)

# Rows are appended through the tables, not the mapped classes: the ORM's bulk statements did more for
# each row than the database did
DEPLOYMENTS = cast(Table, Deployment.__table__)
LOCKS = cast(Table, Lock.__table__)
STEPS = cast(Table, Step.__table__)
SET_SUMMARY = update(DEPLOYMENTS).where(DEPLOYMENTS.c.id == bindparam("b_id")).values(summary=bindparam("b_summary"))
SYSTEM = "conveyor"
NOT_STARTED = (DeploymentState.PENDING.value, DeploymentState.WAITING.value)
ACTIVE = (DeploymentState.DEPLOYING.value, DeploymentState.VERIFYING.value, DeploymentState.BAKING.value)


def _compare_and_set(
    session: Session,
    ids: Sequence[int],
    expected: Sequence[str],
    values: dict[str, Any],
    *also: ColumnElement[bool],
) -> dict[int, Any]:
    """Move the deployments among ``ids`` that are still in an ``expected`` state (and meet ``also``);
    returns their rows."""
    if not ids:
        return {}
    rows = session.execute(
        update(Deployment)
        .where(among(Deployment.id, ids), Deployment.state.in_(expected), *also)
        .values(**values)
        .returning(Deployment.id, Deployment.app, Deployment.environment, Deployment.release_id, Deployment.started_at),
        execution_options={"synchronize_session": False},
    ).all()
    return {row.id: row for row in rows}


def start_all(session: Session, intents: Sequence[Start], now: datetime) -> list[bool]:
    """Start the deployments whose locks are free and that no hold stops now: the holds are read again
    in this transaction, so a block recorded earlier in the same pass (a failure in staging) stops a
    start planned from an older snapshot (the same app in production)."""
    held = _held_now(session, intents, now)
    wanted = {name for intent in intents for name in intent.locks}
    taken = dict(session.execute(select(Lock.name, Lock.deployment_id).where(among(Lock.name, wanted))).all())
    chosen: list[Start] = []
    granted: set[str] = set()
    for intent in intents:
        if intent.deployment_id in held:
            continue  # re-planned next pass, which records the hold's decision
        if any(taken.get(n, intent.deployment_id) != intent.deployment_id or n in granted for n in intent.locks):
            continue  # a lock is held, or an earlier intent of this group takes it: re-planned next pass
        granted.update(intent.locks)
        chosen.append(intent)
    values = {
        "state": DeploymentState.DEPLOYING.value,
        "updated_at": now,
        "started_at": func.coalesce(Deployment.started_at, now),
    }
    started = _compare_and_set(session, [i.deployment_id for i in chosen], NOT_STARTED, values)
    went = [(intent, started[intent.deployment_id]) for intent in chosen if intent.deployment_id in started]
    if went:
        locks = [{"name": n, "deployment_id": row.id, "acquired_at": now} for intent, row in went for n in intent.locks]
        if locks:
            insert_rows(session, LOCKS, locks)
        steps = [
            {
                "deployment_id": row.id,
                "kind": StepKind.DEPLOY.value,
                "name": "deploy",
                "state": StepState.QUEUED.value,
                "due_at": now,
            }
            for _, row in went
        ]
        insert_rows(session, STEPS, steps)
        deployment_events(
            session,
            "deployment.started",
            now,
            [(row, f"deploying to {row.environment}", {"locks": list(intent.locks)}) for intent, row in went],
        )
    return [i.deployment_id in started for i in intents]


def _held_now(session: Session, intents: Sequence[Start], now: datetime) -> set[int]:
    """The deployments among ``intents`` that a hold stops now (see :func:`conveyor.domain.holds.stopping`)."""
    checked = {i.deployment_id: i.policy for i in intents if i.policy is not None}
    if not checked:
        return set()
    holds = load_holds(session)
    if not holds and not any(policy.windows for policy in checked.values()):
        return set()  # no hold and no window: nothing can stop them, no need to read the deployments
    rows = session.execute(
        select(
            Deployment.id,
            Deployment.app,
            Deployment.environment,
            Deployment.release_id,
            Deployment.origin_key,
            Deployment.override,
        ).where(among(Deployment.id, checked))
    ).all()
    held: set[int] = set()
    for row in rows:
        attempt = Attempt(
            row.app,
            row.environment,
            row.release_id,
            explicit=row.origin_key is None,
            override=Override(row.override) if row.override else None,
        )
        if stopping(attempt, holds, checked[row.id], now):
            held.add(row.id)
    return held


def succeed_all(session: Session, intents: Sequence[Succeed], now: datetime) -> list[bool]:
    """Mark the deployments live, free their locks, and lift the blocks older releases left behind.

    Each succeeds only from the state it was planned in and with every one of its steps succeeded: from
    ``deploying`` (no checks), ``verifying`` (all checks passed) or ``baking`` (its bake over too)."""
    values = {"state": DeploymentState.SUCCEEDED.value, "updated_at": now, "finished_at": now}
    unfinished = (
        select(Step.id).where(Step.deployment_id == Deployment.id, Step.state != StepState.SUCCEEDED.value).exists()
    )
    done: dict[int, Any] = {}
    for state in dict.fromkeys(i.from_state for i in intents):
        also: list[ColumnElement[bool]] = [~unfinished, Deployment.cancel_requested_at.is_(None)]
        if state == DeploymentState.BAKING:
            also.append(or_(Deployment.bake_until.is_(None), Deployment.bake_until <= now))
        ids = [i.deployment_id for i in intents if i.from_state == state]
        done |= _compare_and_set(session, ids, (state.value,), values, *also)
    if not done:
        return [False] * len(intents)
    session.execute(delete(Lock).where(among(Lock.deployment_id, done)))
    count_ended(session, [(r.environment, DeploymentState.SUCCEEDED.value, r.started_at, now) for r in done.values()])
    release_ids = {row.release_id for row in done.values()}
    labels = {
        r.id: r.label for r in session.execute(select(Release.id, Release.label).where(among(Release.id, release_ids)))
    }
    summaries = {did: f"{labels.get(r.release_id, r.release_id)} is live in {r.environment}" for did, r in done.items()}
    execute_rows(session, SET_SUMMARY, [{"b_id": did, "b_summary": text} for did, text in summaries.items()])
    replaced = _last_good(session, done.values())  # read before passed() makes these the last good
    deployment_events(
        session, "deployment.succeeded", now, [(row, summaries[did], replaced.get(did)) for did, row in done.items()]
    )
    placements.passed(session, done.values(), now)
    newest = _newest_per_place(done.values())
    _lift_fixed_blocks(session, newest, labels, now)
    seen: set[int] = set()  # an intent repeated within the group changed nothing the second time
    applied = []
    for intent in intents:
        applied.append(intent.deployment_id in done and intent.deployment_id not in seen)
        seen.add(intent.deployment_id)
    return applied


def _last_good(session: Session, rows: Iterable[Any]) -> dict[int, dict[str, Any]]:
    """For each deployment in ``rows``, the one it replaces as its place's last good (a
    ``deployment.succeeded`` event's ``replaced``: a GitHub notifier marks that one inactive)."""
    by_place = {(r.app, r.environment): r.id for r in rows}
    found = session.execute(
        select(Placement.app, Placement.environment, Placement.good_deployment_id)
        .add_columns(Release.id, Release.label, Release.sha)
        .join(Release, Release.id == Placement.good_release_id)
        .where(among(Placement.app, {app for app, _ in by_place}), Placement.good_deployment_id.is_not(None))
    ).all()
    replaced: dict[int, dict[str, Any]] = {}
    for app, environment, good_id, release_id, label, sha in found:
        deployment_id = by_place.get((app, environment))
        if deployment_id is not None and good_id != deployment_id:
            release = {"id": release_id, "label": label, "sha": sha}
            replaced[deployment_id] = {"replaced": {"deployment_id": good_id, "release": release}}
    return replaced


def _newest_per_place(rows: Iterable[Any]) -> dict[tuple[str, str], Any]:
    """The newest release (then the latest deployment of it) per (app, environment) among ``rows``."""
    newest: dict[tuple[str, str], Any] = {}
    for r in rows:
        key = (r.app, r.environment)
        if key not in newest or (newest[key].release_id, newest[key].id) < (r.release_id, r.id):
            newest[key] = r
    return newest


def _lift_fixed_blocks(
    session: Session, fixers: dict[tuple[str, str], Any], labels: dict[int, str], now: datetime
) -> None:
    """A release passing an environment lifts the blocks older releases left there (fixed forward)."""
    holds = session.scalars(
        select(Hold).where(
            Hold.kind == HoldKind.BLOCK.value,
            Hold.lifted_at.is_(None),
            among(Hold.app, {app for app, _ in fixers}),
        )
    ).all()
    for hold in holds:
        fixer = fixers.get((hold.app or "", hold.environment or ""))
        if fixer is None or hold.release_id is None or hold.release_id >= fixer.release_id:
            continue
        label = labels.get(fixer.release_id, str(fixer.release_id))
        lift_hold(session, hold, now, SYSTEM, f"fixed forward: {label} passed {fixer.environment}")


def note_all(session: Session, intents: Sequence[Note], now: datetime) -> list[bool]:
    """Record the decisions that differ from the latest one stored for their place (app, environment and
    deployment); True for those recorded. A manual tier's wait for promotion is also a
    ``promotion.waiting`` Event, once per change, so a chat hears it once."""
    notes = [i.decision for i in intents if i.decision is not None]
    bound = {d.deployment_id for d in notes if d.deployment_id is not None}
    unbound = {d.app for d in notes if d.deployment_id is None}
    latest = latest_fingerprints(session, bound, unbound) if notes else {}
    news: list[DecisionRecord] = []
    recorded: list[bool] = []
    for intent in intents:
        d = intent.decision
        if d is None or latest.get(place := (d.app, d.environment, d.deployment_id)) == d.fingerprint:
            recorded.append(False)
            continue
        latest[place] = d.fingerprint  # the same decision twice in one group is recorded once
        news.append(d)
        recorded.append(True)
    record_decisions(session, news, now)
    waiting = [d for d in news if d.rule == "ManualTierWaitsForPromotion"]
    about = [About(d.summary, d.app, d.environment, d.release_id) for d in waiting]
    record_events(session, "promotion.waiting", at=now, actor=SYSTEM, about=about)
    return recorded


def promote_all(session: Session, intents: Sequence[Promote], now: datetime) -> list[bool]:
    """Create the next environment's deployments; a promotion whose origin exists already, or whose
    source deployment has not succeeded (its success was planned in the same pass and refused), is not."""
    keys = [i.origin_key for i in intents]
    existing = set(session.scalars(select(Deployment.origin_key).where(among(Deployment.origin_key, keys))))
    sources = {i.from_deployment_id for i in intents if i.from_deployment_id is not None}
    succeeded = set(
        session.scalars(
            select(Deployment.id).where(
                among(Deployment.id, sources), Deployment.state == DeploymentState.SUCCEEDED.value
            )
        )
        if sources
        else ()
    )
    created: dict[str, dict[str, Any]] = {}
    applied: list[bool] = []
    for intent in intents:
        source_ok = intent.from_deployment_id is None or intent.from_deployment_id in succeeded
        applied.append(source_ok and intent.origin_key not in existing and intent.origin_key not in created)
        if not applied[-1]:
            continue  # not (yet) succeeded there, already promoted, or twice in this group: once is enough
        created[intent.origin_key] = {
            "release_id": intent.release_id,
            "app": intent.app,
            "environment": intent.environment,
            "state": DeploymentState.PENDING.value,
            "origin_key": intent.origin_key,
            "queued_at": now,
            "updated_at": now,
            "created_by": SYSTEM,
            "summary": intent.decision.summary if intent.decision else "promoted",
            "evidence": {},
        }
    if created:
        columns = DEPLOYMENTS.c
        returning = (columns.id, columns.app, columns.environment, columns.release_id, columns.summary)
        found = session.execute(insert(DEPLOYMENTS).returning(*returning), list(created.values())).all()
        rows = sorted(found, key=lambda row: int(row.id))  # asked unordered, so batched on SQLite too
        deployment_events(session, "deployment.created", now, [(row, row.summary, None) for row in rows])
    return applied
