"""The ``fake`` notifier: the contract, scripted failures and release threads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.notifiers.base import DeliveryContext, Notifier
from conveyor.notifiers.fake import FakeNotifier, FakeNotifierOptions
from tests.notifications.notifier_contract import NotifierContract, make_notification


def fake(**options: object) -> FakeNotifier:
    return FakeNotifier(FakeNotifierOptions.model_validate(options))


class TestFakeContract(NotifierContract):
    __test__ = True

    @pytest.fixture
    def notifier(self) -> Iterator[Notifier]:
        yield fake()

    @pytest.fixture
    def failing_notifier(self) -> Iterator[Notifier | None]:
        yield fake(outcome="fail")

    def received(self, notifier: Notifier) -> int | None:
        assert isinstance(notifier, FakeNotifier)
        return len(notifier.delivered())


def test_fails_the_first_attempts_then_delivers(tmp_path: Path) -> None:
    record = tmp_path / "deliveries.jsonl"
    notifier = fake(fail_first=2, record=str(record))
    results = [notifier.deliver(make_notification(), DeliveryContext("n", "d-1", attempt=a)) for a in (1, 2, 3)]
    assert [r.ok for r in results] == [False, False, True]
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(r["attempt"], r["ok"]) for r in rows] == [(1, False), (2, False), (3, True)]


def test_threaded_remembers_the_first_delivery_as_the_release_thread() -> None:
    notifier = fake(threaded=True)
    first = notifier.deliver(make_notification(id=1), DeliveryContext("n", "d-1"))
    assert first.remember == {"thread": "d-1"}
    second = notifier.deliver(make_notification(id=2), DeliveryContext("n", "d-2", memory=first.remember))
    assert second.remember == {"thread": "d-1"}
    assert [d.thread for d in notifier.delivered()] == ["d-1", "d-1"]
