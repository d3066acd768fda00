"""The ``fake`` check: scripted measurements for tests, demos and benchmarks.

Measurement *i* of an (app, environment, version) takes ``phases[min(i, len(phases) - 1)]``, so
``phases: [error, error, pass]`` errors twice and then passes for ever. The counter lives in the check
instance and is thread-safe; a new instance starts again at zero. A version or SHA that starts with
one of ``fail_versions`` always fails, which lets a demo break one release on purpose. ``duration``
seconds pass (cancellably) before each measurement, to imitate a slow probe.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import cast

from pydantic import BaseModel, ConfigDict, Field

from conveyor.checks.base import Check, CheckRequest
from conveyor.domain.model import Measurement, Phase
from conveyor.steps import StepContext

__all__ = ["FakeCheck", "FakeOptions"]


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phases: list[Phase] = Field(default=["pass"], min_length=1)
    duration: float = Field(default=0, ge=0)
    fail_versions: list[str] = Field(default_factory=list)


class FakeCheck(Check):
    """Answers from a script of phases instead of measuring anything."""

    name = "fake"
    Options = FakeOptions

    def __init__(self) -> None:
        self._taken: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    def measure(self, request: CheckRequest, ctx: StepContext) -> Measurement:
        opts = cast(FakeOptions, request.options)
        index = self._next_index((request.app, request.environment, request.version))
        if ctx.wait(opts.duration):
            return Measurement.errored("cancelled")
        label = f"fake measurement {index + 1} of {request.app} {request.version} in {request.environment}"
        if _marked_to_fail(request, opts.fail_versions):
            return Measurement.failed(f"{label}: version marked to fail", value="fail")
        phase = opts.phases[min(index, len(opts.phases) - 1)]
        return Measurement(phase, f"{label}: {phase}", value=phase)

    def _next_index(self, key: tuple[str, str, str]) -> int:
        with self._lock:
            index = self._taken[key]
            self._taken[key] += 1
            return index


def _marked_to_fail(request: CheckRequest, fail_versions: list[str]) -> bool:
    return any(
        prefix and (request.version.startswith(prefix) or request.sha.startswith(prefix)) for prefix in fail_versions
    )
