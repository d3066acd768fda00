"""The GitHub intake's chores on a conductor: the delivery queue, the CI gate's clock, reconciliation.

- ``github-intake`` claims recorded webhook deliveries (a leased queue, so every worker may run it),
  handles each (:func:`conveyor.github.news.handle`) and settles the candidates they touched; the hook
  route pokes it, so a delivery is worked on at once rather than at the next turn;
- ``ci-gate`` settles every app's newest open candidate: a candidate past its ``ci.timeout``, or one whose
  release failed before (the mirror could not be fetched), is looked at again;
- ``github-retention`` prunes finished deliveries and old CI results after ``github.retention``
  (:mod:`conveyor.github.retention`);
- ``github-reconcile`` runs at start and every ``github.reconcile_interval`` when conveyor can read GitHub's
  API (:func:`github_reads_for`): it catches up on what missed webhooks left behind. GitHub being down
  delays it to its next turn and stops nothing else.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError

from conveyor.clock import utc_now
from conveyor.config.resolved import Config
from conveyor.engine.chores import Chore
from conveyor.github.deliveries import DONE, IGNORED, ClaimedDelivery, DeliveryQueue
from conveyor.github.intake import Intake
from conveyor.github.news import handle, reconcile
from conveyor.github.payloads import NO_SUBJECT, Subject, about
from conveyor.github.reads import GitHubError, GitHubReads, GitHubUnavailable
from conveyor.github.retention import GITHUB_PRUNE_INTERVAL, GitHubRetention
from conveyor.repos import GitError
from conveyor.store.database import Database

log = logging.getLogger(__name__)

INTAKE_CHORE = "github-intake"
INTAKE_EVERY = 0.5  # seconds between looks at the queue when no request pokes it
INTAKE_GAP = 0.05  # at most this often when poked: a burst of deliveries is worked on in batches
GATE_EVERY = 10.0  # seconds between looks at candidates waiting for CI (timeouts, retries)


def github_reads_for(config: Config) -> GitHubReads | None:
    """The GitHub API reader for ``config``, or None when conveyor cannot read GitHub's API.

    This is the one place the REST client plugs in: the intake's truncated-push path and the
    reconciliation take whatever this returns. Without credentials (a ``github:`` section with only a
    webhook secret), webhooks alone drive the intake and a push cut short by GitHub is taken as its payload
    lists it (the files of the commits listed)."""
    from conveyor.github.client import github_client_for  # httpx and the App's crypto only where used

    return github_client_for(config)


def github_chores(
    config: Config,
    db: Database,
    reads: GitHubReads | None,
    *,
    owner: str | None = None,
    clock: Callable[[], datetime] = utc_now,
    close_reads: bool = False,
) -> list[Chore]:
    """The intake's chores; with ``close_reads`` (the reader was made for them) the reconciliation chore
    closes it when the chores stop."""
    if config.github is None:
        return []
    intake = Intake(config, db, clock)
    queue = DeliveryQueue(db, owner=owner or f"{socket.gethostname()}:{os.getpid()}:intake", clock=clock)
    chores = [
        Chore(INTAKE_CHORE, INTAKE_EVERY, lambda: work_deliveries(intake, queue, reads), min_gap=INTAKE_GAP),
        Chore("ci-gate", GATE_EVERY, intake.settle_open, first_after=GATE_EVERY),
        Chore("github-retention", GITHUB_PRUNE_INTERVAL, GitHubRetention(config, db, clock), first_after=60.0),
    ]
    if reads is not None:
        close = getattr(reads, "close", None) if close_reads else None  # once the chores have stopped
        chores.append(
            Chore(
                "github-reconcile",
                config.github.reconcile_interval,
                lambda: _reconcile(intake, reads, config),
                close=(lambda _seconds: close()) if callable(close) else None,
            )
        )
    return chores


def work_deliveries(intake: Intake, queue: DeliveryQueue, reads: GitHubReads | None, limit: int = 50) -> bool:
    """Handle the due deliveries, then settle what they touched; True if a release was made."""
    released = False
    while claimed := queue.claim(limit):
        to_settle: dict[tuple[str, str], None] = {}
        finished: list[tuple[ClaimedDelivery, str, str, Subject]] = []
        for delivery in claimed:
            subject = NO_SUBJECT
            try:
                body = json.loads(delivery.body)
                subject = about(delivery.event, body)
                outcome = handle(intake, reads, delivery.event, body)
            except (ValueError, ValidationError) as exc:  # not JSON, or not the shape GitHub documents
                note = f"unreadable {delivery.event} payload: {_first_line(exc)}"
                finished.append((delivery, IGNORED, note, subject))
                continue
            except (GitHubUnavailable, GitError) as exc:
                queue.retry(delivery, _first_line(exc), subject)
                continue
            except GitHubError as exc:  # refused for good (no access to the repository): asking again won't help
                note = f"GitHub refused what this delivery needs: {_first_line(exc)}"
                finished.append((delivery, IGNORED, note, subject))
                continue
            except Exception as exc:
                log.exception("delivery %s (%s) failed", delivery.delivery_id, delivery.event)
                queue.retry(delivery, _first_line(exc), subject)
                continue
            state = IGNORED if outcome.ignored else DONE
            finished.append((delivery, state, "; ".join(outcome.notes), subject))
            to_settle.update(dict.fromkeys(outcome.to_settle))
        queue.finish_all(finished)
        for app, sha in to_settle:
            try:
                released |= intake.settle(app, sha)
            except Exception:  # the ci-gate chore settles it again
                log.exception("%s: settling %s failed; it is tried again", app, sha[:7])
        if len(claimed) < limit:
            break
    return released


def _reconcile(intake: Intake, reads: GitHubReads, config: Config) -> bool:
    try:
        return reconcile(intake, reads, config.apps.values())
    except (GitHubUnavailable, GitError) as exc:
        log.warning("reconciliation with GitHub skipped this turn: %s", _first_line(exc))
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
