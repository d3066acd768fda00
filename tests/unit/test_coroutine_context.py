"""``ctx.sleep`` wakes on cancellation from any thread, a driver defines ``deploy`` or ``deploy_async``,
and the step loop runs many coroutines on one thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from conveyor.drivers.base import DeployRequest, DeployResult, Driver
from conveyor.drivers.fake import FakeDriver, FakeOptions
from conveyor.engine.step_loop import StepLoop
from conveyor.steps import StepContext


def test_sleep_runs_its_time_when_nothing_cancels_it() -> None:
    ctx = StepContext()
    started = time.monotonic()
    assert asyncio.run(ctx.sleep(0.2)) is False
    assert time.monotonic() - started >= 0.19
    assert not ctx.cancelled._wakers  # nothing left behind


def test_sleep_wakes_at_once_when_cancelled_from_another_thread() -> None:
    ctx = StepContext()
    threading.Timer(0.1, ctx.cancelled.set).start()
    started = time.monotonic()
    assert asyncio.run(ctx.sleep(30)) is True
    assert time.monotonic() - started < 5


def test_sleep_returns_at_once_when_already_cancelled() -> None:
    ctx = StepContext()
    ctx.cancelled.set()
    assert asyncio.run(ctx.sleep(30)) is True
    assert ctx.wait(30) is True


def test_a_driver_defines_deploy_or_deploy_async() -> None:
    with pytest.raises(TypeError, match="must define deploy"):

        class Nothing(Driver):
            name = "nothing"

    class OnlyAsync(Driver):
        name = "only_async"

        async def deploy_async(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
            await ctx.sleep(0)
            return DeployResult(ok=True, message=f"{request.version} out")

    request = DeployRequest("shop", "staging", "v1", "a" * 40, "/repo", {}, FakeOptions(), Path("/state"))
    driver = OnlyAsync()
    assert driver.runs_async(request.options)
    assert driver.deploy(request, StepContext()).message == "v1 out"  # run to the end on a loop of its own
    assert FakeDriver().runs_async(FakeOptions()) and not FakeDriver().runs_async(FakeOptions(blocking=True))


def test_the_loop_runs_a_thousand_coroutines_on_one_thread() -> None:
    loop = StepLoop()
    done = threading.Semaphore(0)
    threads: set[int] = set()

    async def job() -> None:
        await asyncio.sleep(0.2)
        threads.add(threading.get_ident())
        done.release()

    before = threading.active_count()
    started = time.monotonic()
    loop.submit_all([job] * 1000)
    assert threading.active_count() <= before + 1
    for _ in range(1000):
        assert done.acquire(timeout=30)
    assert len(threads) == 1 and time.monotonic() - started < 10
    loop.stop()
    assert not loop.running


def test_a_cancelled_task_runs_its_cleanup() -> None:
    loop = StepLoop()
    cleaned = threading.Event()

    async def job() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.set()

    (handle,) = loop.submit_all([job])
    time.sleep(0.1)
    handle.cancel()
    assert cleaned.wait(5)
    loop.stop()


def test_cancelling_after_the_sleeping_loop_closed_is_harmless() -> None:
    """``set()`` may call a sleep's waker just after that sleep ended and its loop closed (a deploy run to
    the end by ``deploy()``): the waker does not raise into whoever cancels the step, the conductor's
    loop or its heartbeat."""
    ctx = StepContext()
    captured = []

    async def sleep_and_capture_its_waker() -> bool:
        sleeping = asyncio.ensure_future(ctx.sleep(0.05))
        await asyncio.sleep(0)  # the sleep has registered its waker
        captured.extend(ctx.cancelled._wakers)
        return await sleeping

    assert asyncio.run(sleep_and_capture_its_waker()) is False  # the loop is closed now
    (wake,) = captured
    wake()  # what set() does when it took the waker just before the sleep ended
    ctx.cancelled.set()
    assert ctx.cancelled.is_set()
