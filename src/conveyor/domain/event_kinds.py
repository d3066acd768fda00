"""The event kinds conveyor records, and the ones that notify unless a notifier lists its own."""

from __future__ import annotations

EVENT_KINDS = frozenset(
    {
        "release.created",
        "release.ci_failed",
        "deployment.created",
        "deployment.waiting",
        "deployment.started",
        "deployment.verifying",
        "deployment.succeeded",
        "deployment.failed",
        "deployment.superseded",
        "deployment.baking",
        "deployment.cancelled",
        "cancel.requested",
        "rollback.queued",
        "step.started",
        "step.finished",
        "step.requeued",
        "step.abandoned",
        "step.released",
        "step.cancelled",
        "step.stopping",
        "step.timed_out",
        "notifier.disabled",
        "hold.created",
        "hold.lifted",
        "hold.overridden",
        "promotion.waiting",
        "error.new_issue",
        "error.spike",
    }
)

# What a person wants to hear about: a release, its outcomes in each environment, what stops it, and the
# errors its app starts throwing (docs/errors.md).
NOTIFYING_KINDS = frozenset(
    {
        "release.created",
        "release.ci_failed",
        "deployment.started",
        "deployment.succeeded",
        "deployment.failed",
        "deployment.superseded",
        "deployment.cancelled",
        "rollback.queued",
        "promotion.waiting",
        "hold.created",
        "hold.lifted",
        "hold.overridden",
        "error.new_issue",
        "error.spike",
    }
)
