"""The ``fake`` driver: deploys nothing, takes as long and ends as configured.

Used by tests, the simulator and benchmarks. It sleeps ``duration`` seconds (waking at once on
cancellation) as a coroutine on the runner's event loop, or on a thread of its own with ``blocking:
true``, then succeeds or fails: it fails when ``outcome`` is "fail" or when the release's version or
SHA starts with any prefix in ``fail_versions``. With ``record`` set it appends one JSON line per deploy
call to that file (``app``, ``environment``, ``version``, ``attempt``, ``start``, ``end`` as Unix times,
``pid``, and ``outcome``: succeeded, failed or cancelled), so a test can assert which deploys ran and
that their intervals never overlapped.
Deploying the same version twice is trivially idempotent: it changes nothing but the record.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from conveyor.drivers.base import DeployRequest, DeployResult, Driver
from conveyor.steps import StepContext

_record_lock = threading.Lock()


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration: Annotated[float, Field(ge=0)] = 0.0
    outcome: Literal["succeed", "fail"] = "succeed"
    fail_versions: list[str] = Field(default_factory=list)
    record: str | None = None
    # wait on a thread of its own, as a driver that blocks does, instead of as a coroutine on the runner's
    # event loop (benchmarks compare the two)
    blocking: bool = False


class FakeDriver(Driver):
    name = "fake"
    Options = FakeOptions
    uses_state_dir = False  # it deploys nothing, so it keeps nothing

    def runs_async(self, options: BaseModel) -> bool:
        return not cast(FakeOptions, options).blocking

    def deploy(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        opts = cast(FakeOptions, request.options)
        start = self._begin(request, ctx)
        return self._end(request, ctx, start, cancelled=ctx.wait(opts.duration))

    async def deploy_async(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        opts = cast(FakeOptions, request.options)
        start = self._begin(request, ctx)
        return self._end(request, ctx, start, cancelled=await ctx.sleep(opts.duration))

    def _begin(self, request: DeployRequest, ctx: StepContext) -> float:
        ctx.log(f"fake deploy of {request.app} {request.version} to {request.environment}")
        return time.time()

    def _end(self, request: DeployRequest, ctx: StepContext, start: float, *, cancelled: bool) -> DeployResult:
        opts = cast(FakeOptions, request.options)
        if cancelled:
            outcome, result = "cancelled", DeployResult(ok=False, message="cancelled")
        elif _should_fail(request, opts):
            outcome = "failed"
            result = DeployResult(ok=False, message=f"fake deploy of {request.version} failed")
        else:
            outcome, result = "succeeded", DeployResult(ok=True, message=f"fake deployed {request.version}")
        ctx.log(result.message)
        if opts.record:
            _append_record(Path(opts.record), request, start, time.time(), outcome)
        return result


def _should_fail(request: DeployRequest, opts: FakeOptions) -> bool:
    if opts.outcome == "fail":
        return True
    return any(request.version.startswith(p) or request.sha.startswith(p) for p in opts.fail_versions)


def _append_record(path: Path, request: DeployRequest, start: float, end: float, outcome: str) -> None:
    line = json.dumps(
        {
            "app": request.app,
            "environment": request.environment,
            "version": request.version,
            "attempt": request.attempt,
            "start": start,
            "end": end,
            "pid": os.getpid(),
            "outcome": outcome,
        }
    )
    # One write of one line to a file opened for appending: whole lines even across processes.
    with _record_lock, path.open("a", encoding="utf-8") as out:
        out.write(line + "\n")
