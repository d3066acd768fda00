"""Plugins that misbehave on purpose, registered beside the real ones for the tests that need them.

They are added to what :func:`conveyor.plugins._load` finds (the entry points), so config validation,
the executor and the sender meet them exactly as they would meet a third-party plugin.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from conveyor import plugins
from conveyor.drivers.base import DeployRequest, DeployResult, Driver
from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, Notifier
from conveyor.steps import StepContext


class HangOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = 3600.0  # how long it ignores everything before returning "deployed" after all


class ExitingDriver(Driver):
    """Calls ``sys.exit()`` from the step's thread, as a careless deploy library might."""

    name = "exiting"

    def deploy(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        ctx.log("about to exit")
        sys.exit(3)


class HangingDriver(Driver):
    """Ignores cancellation: sleeps (not ``ctx.wait``) for ``seconds``, then claims success."""

    name = "hanging"
    Options = HangOptions
    returned = threading.Event()  # set when a run finally returns (its late result)

    def deploy(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        ctx.log("hanging")
        time.sleep(request.options.seconds)  # type: ignore[attr-defined]
        HangingDriver.returned.set()
        return DeployResult(ok=True, message="deployed after all")


class ExitingAsyncDriver(Driver):
    """Calls ``sys.exit()`` from its coroutine, on the step loop."""

    name = "exiting_async"

    async def deploy_async(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        ctx.log("about to exit")
        await asyncio.sleep(0)
        sys.exit(4)


class HangingAsyncDriver(Driver):
    """A coroutine that ignores cancellation: awaits ``asyncio.sleep`` (not ``ctx.sleep``) for ``seconds``.
    ``cancelled`` is set when its task is cancelled (it was abandoned)."""

    name = "hanging_async"
    Options = HangOptions
    cancelled = threading.Event()

    async def deploy_async(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        ctx.log("hanging")
        try:
            await asyncio.sleep(request.options.seconds)  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            HangingAsyncDriver.cancelled.set()
            raise
        return DeployResult(ok=True, message="deployed after all")


class BlockingAsyncDriver(Driver):
    """A coroutine that blocks the step loop: ``time.sleep`` for ``seconds`` inside ``deploy_async``."""

    name = "blocking_async"
    Options = HangOptions
    returned = threading.Event()

    async def deploy_async(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        ctx.log("blocking the loop")
        time.sleep(request.options.seconds)  # type: ignore[attr-defined]
        BlockingAsyncDriver.returned.set()
        return DeployResult(ok=True, message="deployed after all")


class UnbuildableNotifier(Notifier):
    """Its constructor exits the process (or would, on the main thread)."""

    name = "unbuildable"

    def __init__(self, options: BaseModel) -> None:
        raise SystemExit("no configuration for the chat service")

    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        raise AssertionError("never built, never called")


class ExitingNotifier(Notifier):
    """Exits from ``deliver``."""

    name = "exiting"
    calls = 0

    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        ExitingNotifier.calls += 1
        sys.exit(1)


EXTRA: dict[str, dict[str, Any]] = {
    plugins.DRIVER_GROUP: {
        "exiting": ExitingDriver,
        "hanging": HangingDriver,
        "exiting_async": ExitingAsyncDriver,
        "hanging_async": HangingAsyncDriver,
        "blocking_async": BlockingAsyncDriver,
    },
    plugins.NOTIFIER_GROUP: {"unbuildable": UnbuildableNotifier, "exiting": ExitingNotifier},
}


def register_misbehaving_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    real = plugins._load

    def load(group: str) -> dict[str, Any]:
        return {**real(group), **EXTRA.get(group, {})}

    monkeypatch.setattr(plugins, "_load", load)
    HangingDriver.returned.clear()
    HangingAsyncDriver.cancelled.clear()
    BlockingAsyncDriver.returned.clear()
    ExitingNotifier.calls = 0
