"""The contract every check passes, built-in or third-party.

Subclass :class:`CheckContract` in a ``test_*.py`` module and override the fixtures ``check``,
``passing_request``, ``failing_request``, ``broken_request`` and ``slow_request`` (a target the check
takes a while to measure, used to test cancellation). Set ``cancel_gives_error = False`` for a check whose
single measurement cannot be interrupted but is short anyway (the ``http`` check is bounded by its
timeout); the suite then only requires that a cancelled measurement returns promptly.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from conveyor import plugins
from conveyor.checks.base import Check, CheckRequest
from conveyor.domain.model import Measurement
from conveyor.steps import ListLog, StepContext

CANCEL_WITHIN = 5.0


def make_request(options: BaseModel, state_dir: Path, **overrides: Any) -> CheckRequest:
    """A request for app ``shop`` version ``1.2.3`` in ``staging``; override any field."""
    fields: dict[str, Any] = {
        "app": "shop",
        "environment": "staging",
        "version": "1.2.3",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "vars": {"region": "eu-west"},
        "options": options,
        "state_dir": state_dir,
        "repo": str(state_dir / "mirror.git"),
    }
    fields.update(overrides)
    return CheckRequest(**fields)


class CheckContract:
    __test__ = False

    cancel_gives_error = True

    @pytest.fixture
    def check(self) -> Check:
        raise NotImplementedError

    @pytest.fixture
    def passing_request(self) -> CheckRequest:
        raise NotImplementedError

    @pytest.fixture
    def failing_request(self) -> CheckRequest:
        raise NotImplementedError

    @pytest.fixture
    def broken_request(self) -> CheckRequest:
        raise NotImplementedError

    @pytest.fixture
    def slow_request(self) -> CheckRequest:
        raise NotImplementedError

    @pytest.fixture
    def log(self) -> ListLog:
        return ListLog()

    @pytest.fixture
    def ctx(self, log: ListLog) -> StepContext:
        return StepContext(log=log)

    def test_registered_under_its_name(self, check: Check) -> None:
        assert plugins.check_class(check.name) is type(check)

    def test_options_reject_unknown_fields(self, check: Check) -> None:
        with pytest.raises(ValidationError):
            check.Options.model_validate({"no_such_option": 1})

    def test_passing_target_passes(self, check: Check, passing_request: CheckRequest, ctx: StepContext) -> None:
        measurement = check.measure(passing_request, ctx)
        assert isinstance(measurement, Measurement)
        assert measurement.phase == "pass", measurement.message

    def test_failing_target_fails(self, check: Check, failing_request: CheckRequest, ctx: StepContext) -> None:
        measurement = check.measure(failing_request, ctx)
        assert measurement.phase == "fail", measurement.message
        assert measurement.message

    def test_broken_target_errors_without_raising(
        self, check: Check, broken_request: CheckRequest, ctx: StepContext
    ) -> None:
        measurement = check.measure(broken_request, ctx)
        assert measurement.phase == "error", measurement.message
        assert measurement.message

    def test_measures_again_on_the_same_instance(
        self, check: Check, passing_request: CheckRequest, failing_request: CheckRequest, ctx: StepContext
    ) -> None:
        assert check.measure(failing_request, ctx).phase == "fail"
        assert check.measure(passing_request, ctx).phase == "pass"
        assert check.measure(passing_request, ctx).phase == "pass"

    def test_cancel_returns_promptly(self, check: Check, slow_request: CheckRequest, ctx: StepContext) -> None:
        result: list[Measurement | BaseException] = []

        def measure() -> None:
            try:
                result.append(check.measure(slow_request, ctx))
            except BaseException as exc:  # reported by the assertion below
                result.append(exc)

        worker = threading.Thread(target=measure)
        worker.start()
        time.sleep(0.3)
        cancelled_at = time.monotonic()
        ctx.cancelled.set()
        worker.join(CANCEL_WITHIN)
        assert not worker.is_alive(), f"measure still running {CANCEL_WITHIN}s after cancel"
        assert time.monotonic() - cancelled_at < CANCEL_WITHIN
        (outcome,) = result
        assert isinstance(outcome, Measurement), f"measure raised {outcome!r}"
        if self.cancel_gives_error:
            assert outcome.phase == "error", outcome.message
