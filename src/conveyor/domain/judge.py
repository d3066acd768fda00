"""The judge of check results: measurements plus limits in, one outcome out.

Pure: no I/O, no clock. The rules follow Argo Rollouts' analysis and are applied in this order, so the
first one that fires decides:

1. more ``fail`` measurements than ``failure_limit`` -> ``failed``;
2. more trailing consecutive ``error`` measurements than ``consecutive_error_limit`` -> ``error``;
3. more ``inconclusive`` measurements than ``inconclusive_limit`` -> ``inconclusive``;
4. fewer measurements than ``count`` -> ``running`` (take another);
5. ``count`` reached with no ``pass`` at all -> ``error`` (errors and tolerated failures prove nothing);
6. otherwise -> ``successful``.

Because rules 1-3 come before rule 4, a check stops early as soon as a limit is exceeded.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.domain.model import CheckLimits, CheckOutcome, CheckPhase, Measurement, Phase

__all__ = ["judge"]

PHASES: tuple[Phase, ...] = ("pass", "fail", "error", "inconclusive")


def judge(measurements: Sequence[Measurement], limits: CheckLimits) -> CheckOutcome:
    """Decide the outcome of a check from the measurements taken so far."""
    counts: dict[str, int] = {phase: sum(1 for m in measurements if m.phase == phase) for phase in PHASES}
    total = len(measurements)

    if counts["fail"] > limits.failure_limit:
        return _outcome(
            "failed",
            f"{counts['fail']} of {total} measurements failed (limit {limits.failure_limit})",
            _latest(measurements, "fail"),
            counts,
        )
    errors_in_a_row = _trailing(measurements, "error")
    if errors_in_a_row > limits.consecutive_error_limit:
        return _outcome(
            "error",
            f"{errors_in_a_row} consecutive measurements errored (limit {limits.consecutive_error_limit})",
            _latest(measurements, "error"),
            counts,
        )
    if counts["inconclusive"] > limits.inconclusive_limit:
        return _outcome(
            "inconclusive",
            f"{counts['inconclusive']} of {total} measurements inconclusive (limit {limits.inconclusive_limit})",
            _latest(measurements, "inconclusive"),
            counts,
        )
    if total < limits.count:
        return CheckOutcome("running", f"{total} of {limits.count} measurements taken", counts)
    if counts["pass"] == 0:
        last = measurements[-1] if measurements else None
        return _outcome("error", "no measurement passed", last, counts)
    return CheckOutcome("successful", f"{counts['pass']} of {total} measurements passed", counts)


def _outcome(phase: CheckPhase, summary: str, evidence: Measurement | None, counts: dict[str, int]) -> CheckOutcome:
    reason = f"{summary}: {evidence.message}" if evidence and evidence.message else summary
    return CheckOutcome(phase, reason, counts)


def _latest(measurements: Sequence[Measurement], phase: Phase) -> Measurement | None:
    return next((m for m in reversed(measurements) if m.phase == phase), None)


def _trailing(measurements: Sequence[Measurement], phase: Phase) -> int:
    run = 0
    for m in reversed(measurements):
        if m.phase != phase:
            break
        run += 1
    return run
