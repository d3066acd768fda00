"""The contract every deploy driver passes, built-in or third-party.

Subclass :class:`DriverContract` in a ``test_*.py`` module, set ``__test__ = True`` and override the
fixtures:

* ``driver``: the driver under test;
* ``succeeding_request``: a request that deploys fine;
* ``failing_request``: a request whose deploy fails (a non-zero exit, a process that dies);
* ``long_request``: a request whose deploy runs for a long time (used to test cancellation);
* ``timing_out_request``: a request whose deploy exceeds the driver's own timeout, or ``None`` when the
  driver has no timeout (the test is then skipped);
* ``log_marker`` (optional): a line the timing-out deploy prints, which must survive in the step log.

Override :meth:`same_deployment` when "deployed twice" has something to compare beyond ``ok`` (the
``local`` driver compares pids). Subclasses tear down what they start in their fixtures' finalizers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from conveyor import plugins
from conveyor.drivers.base import DeployRequest, DeployResult, Driver
from conveyor.steps import ListLog, StepContext

CANCEL_WITHIN = 5.0
SHA_1 = "0123456789abcdef0123456789abcdef01234567"


def make_request(options: BaseModel, state_dir: Path, **overrides: Any) -> DeployRequest:
    """A request for app ``shop`` version ``1.2.3`` to ``staging``; override any field."""
    fields: dict[str, Any] = {
        "app": "shop",
        "environment": "staging",
        "version": "1.2.3",
        "sha": SHA_1,
        "repo": str(state_dir / "mirror.git"),
        "vars": {"region": "eu-west"},
        "options": options,
        "state_dir": state_dir,
    }
    fields.update(overrides)
    return DeployRequest(**fields)


def run_deploy(driver: Driver, request: DeployRequest, ctx: StepContext) -> DeployResult:
    """Deploy as the runner does: a coroutine driver's ``deploy_async`` on an event loop (with
    cancellation coming from another thread, as the conductor's does), any other's ``deploy``."""
    if driver.runs_async(request.options):
        return asyncio.run(driver.deploy_async(request, ctx))
    return driver.deploy(request, ctx)


def new_context() -> tuple[StepContext, ListLog]:
    log = ListLog()
    return StepContext(log=log), log


def cancel_after(ctx: StepContext, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, ctx.cancelled.set)
    timer.daemon = True
    timer.start()
    return timer


class DriverContract:
    __test__ = False

    log_marker: str | None = None

    @pytest.fixture
    def driver(self) -> Driver:
        raise NotImplementedError

    @pytest.fixture
    def succeeding_request(self) -> DeployRequest:
        raise NotImplementedError

    @pytest.fixture
    def failing_request(self) -> DeployRequest:
        raise NotImplementedError

    @pytest.fixture
    def long_request(self) -> DeployRequest:
        raise NotImplementedError

    @pytest.fixture
    def timing_out_request(self) -> DeployRequest | None:
        return None

    def same_deployment(self, first: DeployResult, second: DeployResult) -> None:
        """Assert that two deploys of one release left the same thing in place."""
        assert first.ok == second.ok

    # --- the contract ---------------------------------------------------------------------------------

    def test_is_registered_under_its_name(self, driver: Driver) -> None:
        assert plugins.driver_class(driver.name) is type(driver)

    def test_options_reject_unknown_fields(self, driver: Driver, succeeding_request: DeployRequest) -> None:
        fields = succeeding_request.options.model_dump() | {"no_such_option": 1}
        with pytest.raises(ValidationError):
            driver.Options.model_validate(fields)

    def test_succeeding_deploy_is_ok(self, driver: Driver, succeeding_request: DeployRequest) -> None:
        ctx, _ = new_context()
        result = run_deploy(driver, succeeding_request, ctx)
        assert result.ok, result.message

    def test_deploying_the_same_version_twice_is_idempotent(
        self, driver: Driver, succeeding_request: DeployRequest
    ) -> None:
        first = run_deploy(driver, succeeding_request, new_context()[0])
        second = run_deploy(driver, succeeding_request, new_context()[0])
        assert first.ok and second.ok, (first.message, second.message)
        self.same_deployment(first, second)

    def test_failure_is_a_result_not_an_exception(self, driver: Driver, failing_request: DeployRequest) -> None:
        ctx, _ = new_context()
        result = run_deploy(driver, failing_request, ctx)
        assert not result.ok
        assert result.message

    def test_timeout_fails_and_keeps_the_log(self, driver: Driver, timing_out_request: DeployRequest | None) -> None:
        if timing_out_request is None:
            pytest.skip("this driver has no timeout")
        ctx, log = new_context()
        result = run_deploy(driver, timing_out_request, ctx)
        assert not result.ok
        assert "after" in result.message, result.message
        if self.log_marker is not None:
            assert self.log_marker in log.text

    def test_cancellation_stops_promptly(self, driver: Driver, long_request: DeployRequest) -> None:
        ctx, _ = new_context()
        timer = cancel_after(ctx, 0.5)
        started = time.monotonic()
        result = run_deploy(driver, long_request, ctx)
        elapsed = time.monotonic() - started
        timer.cancel()
        assert not result.ok
        assert "cancel" in result.message
        assert elapsed < CANCEL_WITHIN

    def test_already_cancelled_step_does_not_succeed(self, driver: Driver, long_request: DeployRequest) -> None:
        ctx, _ = new_context()
        ctx.cancelled.set()
        started = time.monotonic()
        result = run_deploy(driver, long_request, ctx)
        assert not result.ok
        assert time.monotonic() - started < CANCEL_WITHIN

    def test_teardown_is_idempotent(self, driver: Driver, succeeding_request: DeployRequest) -> None:
        request = succeeding_request
        assert run_deploy(driver, request, new_context()[0]).ok
        for _ in range(2):
            result = driver.teardown(request.app, request.environment, request.state_dir, new_context()[0])
            assert result.ok, result.message
