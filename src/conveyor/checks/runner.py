"""Running one check to its outcome: the loop around :meth:`Check.measure` and the pure judge.

The loop waits ``initial_delay``, then measures, asks :func:`conveyor.domain.judge.judge` whether the
check is done, and waits ``interval`` before the next measurement. It stops as soon as the judge decides,
so a failing check stops early. Invariants:

- a check never crashes the engine: an exception escaping ``measure`` becomes an ``error`` measurement
  carrying the exception's text;
- every measurement is stamped with ``at=clock()`` and written to the step log as one line;
- cancellation (``ctx.cancelled``) ends the loop promptly with outcome ``error``, reason ``cancelled``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

from conveyor.checks.base import Check, CheckRequest
from conveyor.domain.judge import judge
from conveyor.domain.model import CheckLimits, CheckOutcome, Measurement
from conveyor.steps import StepContext

__all__ = ["run_check", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def run_check(
    check: Check,
    request: CheckRequest,
    limits: CheckLimits,
    ctx: StepContext,
    clock: Callable[[], datetime] = utc_now,
) -> tuple[list[Measurement], CheckOutcome]:
    """Measure until the judge decides; return the measurements and the outcome."""
    measurements: list[Measurement] = []
    if ctx.wait(limits.initial_delay):
        return measurements, _cancelled(measurements, limits)
    while True:
        measurement = dataclasses.replace(_measure_safely(check, request, ctx), at=clock())
        measurements.append(measurement)
        ctx.log(_log_line(check, len(measurements), measurement))
        if ctx.cancelled.is_set():
            return measurements, _cancelled(measurements, limits)
        outcome = judge(measurements, limits)
        if outcome.done:
            ctx.log(f"check {check.name}: {outcome.phase}: {outcome.reason}")
            return measurements, outcome
        if ctx.wait(limits.interval):
            return measurements, _cancelled(measurements, limits)


def _measure_safely(check: Check, request: CheckRequest, ctx: StepContext) -> Measurement:
    try:
        return check.measure(request, ctx)
    except Exception as exc:  # a check must never crash the engine
        return Measurement.errored(f"check {check.name} raised {type(exc).__name__}: {exc}")


def _cancelled(measurements: list[Measurement], limits: CheckLimits) -> CheckOutcome:
    return CheckOutcome("error", "cancelled", judge(measurements, limits).counts)


def _log_line(check: Check, number: int, measurement: Measurement) -> str:
    line = f"check {check.name} #{number}: {measurement.phase}"
    if measurement.message:
        line += f": {measurement.message}"
    return line.replace("\n", " ")
