"""The contract every notifier passes, built-in or third-party.

Subclass :class:`NotifierContract` in a ``test_*.py`` module, set ``__test__ = True`` and override the
fixtures (each yields a notifier and closes it afterwards):

* ``notifier``: a notifier whose target takes deliveries;
* ``failing_notifier``: one whose target refuses them, or ``None`` when nothing can refuse (skipped);
* ``slow_notifier``: one whose target answers later than the notifier's own timeout, or ``None``
  when the notifier has no timeout (skipped); ``SLOW_WITHIN`` bounds how long a delivery may take.

Override :meth:`received` to say how many deliveries the target really got, when it can be observed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from conveyor import plugins
from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, Notifier, ReleaseRef

SLOW_WITHIN = 5.0


def make_notification(**overrides: object) -> Notification:
    """A ``deployment.failed`` of ``shop`` 1.2.3 in staging; override any field."""
    fields: dict[str, object] = {
        "id": 42,
        "kind": "deployment.failed",
        "at": datetime(2026, 11, 26, 9, 30, tzinfo=UTC),
        "actor": "conveyor",
        "app": "shop",
        "environment": "staging",
        "release": ReleaseRef(7, "v1.2.3", "0123456789abcdef0123456789abcdef01234567"),
        "deployment_id": 12,
        "message": "failed check 'smoke' in staging: HTTP 500",
        "team": "web-team",
        "data": {"check": "smoke"},
    }
    fields.update(overrides)
    return Notification(**fields)  # type: ignore[arg-type]


def make_context(name: str = "team-chat", delivery_id: str = "9b2f6c1e-0000-4000-8000-000000000001") -> DeliveryContext:
    return DeliveryContext(notifier=name, delivery_id=delivery_id)


def secrets_of(options: BaseModel) -> list[str]:
    values = (getattr(options, name) for name in type(options).model_fields)
    return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]


class NotifierContract:
    __test__ = False

    @pytest.fixture
    def notifier(self) -> Iterator[Notifier]:
        raise NotImplementedError

    @pytest.fixture
    def failing_notifier(self) -> Iterator[Notifier | None]:
        yield None

    @pytest.fixture
    def slow_notifier(self) -> Iterator[Notifier | None]:
        yield None

    def received(self, notifier: Notifier) -> int | None:
        """How many deliveries the target got, or None when that cannot be observed."""
        return None

    # --- the contract ---------------------------------------------------------------------------------

    def test_is_registered_under_its_name(self, notifier: Notifier) -> None:
        assert plugins.notifier_class(notifier.name) is type(notifier)

    def test_options_reject_unknown_fields(self, notifier: Notifier) -> None:
        fields = notifier.options.model_dump() | {"no_such_option": 1}
        fields = {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in fields.items()}
        with pytest.raises(ValidationError):
            notifier.Options.model_validate(fields)

    def test_delivers(self, notifier: Notifier) -> None:
        result = notifier.deliver(make_notification(), make_context())
        assert isinstance(result, DeliveryResult)
        assert result.ok, result.message
        assert self.received(notifier) in (None, 1)

    def test_delivers_a_notification_without_release_or_app(self, notifier: Notifier) -> None:
        bare = make_notification(app=None, environment=None, release=None, deployment_id=None, team=None, data={})
        assert notifier.deliver(bare, make_context()).ok

    def test_a_retry_of_the_same_delivery_is_harmless(self, notifier: Notifier) -> None:
        notification = make_notification()
        first = notifier.deliver(notification, make_context())
        again = notifier.deliver(notification, DeliveryContext("team-chat", make_context().delivery_id, attempt=2))
        assert first.ok and again.ok, (first.message, again.message)

    def test_deliveries_from_several_threads(self, notifier: Notifier) -> None:
        results: list[DeliveryResult] = []
        lock = threading.Lock()

        def deliver(i: int) -> None:
            result = notifier.deliver(make_notification(id=i), make_context(delivery_id=f"delivery-{i}"))
            with lock:
                results.append(result)

        threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 8 and all(r.ok for r in results), [r.message for r in results]

    def test_failure_is_a_result_not_an_exception(self, failing_notifier: Notifier | None) -> None:
        if failing_notifier is None:
            pytest.skip("nothing can refuse this notifier's deliveries")
        result = failing_notifier.deliver(make_notification(), make_context())
        assert not result.ok
        assert result.message
        for secret in secrets_of(failing_notifier.options):
            assert secret not in result.message

    def test_a_slow_target_is_a_failed_attempt_within_the_timeout(self, slow_notifier: Notifier | None) -> None:
        if slow_notifier is None:
            pytest.skip("this notifier has no timeout")
        started = time.monotonic()
        result = slow_notifier.deliver(make_notification(), make_context())
        assert not result.ok
        assert time.monotonic() - started < SLOW_WITHIN

    def test_close_after_use(self, notifier: Notifier) -> None:
        notifier.deliver(make_notification(), make_context())
        notifier.close()
