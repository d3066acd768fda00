"""The ``log`` notifier: the contract, and one JSON line on stderr per notification."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from conveyor.notifiers.base import NoOptions, Notifier
from conveyor.notifiers.log import LogNotifier
from tests.notifications.notifier_contract import NotifierContract, make_context, make_notification


class TestLogContract(NotifierContract):
    __test__ = True

    @pytest.fixture
    def notifier(self) -> Iterator[Notifier]:
        notifier = LogNotifier(NoOptions())
        yield notifier
        notifier.close()


def test_writes_one_json_line_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    notification = make_notification()
    result = LogNotifier(NoOptions()).deliver(notification, make_context(name="audit", delivery_id="d-7"))
    assert result.ok
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert json.loads(line) == {"notifier": "audit", "delivery_id": "d-7", "notification": notification.to_json()}
