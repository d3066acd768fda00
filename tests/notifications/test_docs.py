"""docs/notifications.md stays honest: every event kind conveyor records can be routed, and the kinds,
options, headers and payload fields a receiver relies on are all documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.domain.event_kinds import EVENT_KINDS, NOTIFYING_KINDS
from conveyor.notifiers.webhook import WebhookOptions
from tests.notifications.notifier_contract import make_notification
from tests.test_docs import event_kinds

DOC = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text(encoding="utf-8")


def test_the_known_event_kinds_are_the_ones_recorded() -> None:
    """A notifier's ``events`` list is checked against EVENT_KINDS: it must match what the code records."""
    assert set(event_kinds()) == EVENT_KINDS


@pytest.mark.parametrize(
    "word",
    sorted(NOTIFYING_KINDS)
    + list(WebhookOptions.model_fields)
    + list(make_notification().to_json())
    + ["X-Conveyor-Event", "X-Conveyor-Delivery", "X-Conveyor-Signature", "global", "events", "type"],
)
def test_documented(word: str) -> None:
    assert f"`{word}`" in DOC
