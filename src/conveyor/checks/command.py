"""The ``command`` check: run a program; exit status 0 passes.

The program is started from an argv list, never through a shell, by :mod:`conveyor.supervisor` (the one
supervisor drivers use too): in its own process group, so that a timeout, a cancel or the worker's death
stops it together with everything it started. Release facts reach it only as environment variables:

- a few inherited variables (``PATH``, ``HOME``, ``LANG``, ...), nothing else from conveyor's own
  environment, so conveyor's secrets never leak into checks;
- the release facts, exactly as drivers get them (see :meth:`CheckRequest.environ`): ``CONVEYOR_APP``,
  ``CONVEYOR_ENV``, ``CONVEYOR_VERSION``, ``CONVEYOR_SHA``, ``CONVEYOR_REPO``, ``CONVEYOR_ATTEMPT``,
  ``CONVEYOR_LEASE_EXPIRES_AT``, and each per-environment var as ``NAME`` and ``CONVEYOR_VAR_NAME``;
- ``env`` from the options, last, so it wins.

Phases: exit 0 -> ``pass``; any other exit -> ``fail`` ("exit 3: <last output line>"); a timeout, a
missing executable or another failure to start -> ``error``; a cancel -> ``error`` ("cancelled"). Every
output line (stdout and stderr, merged) goes to the step log as it arrives.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import cast

from pydantic import BaseModel, ConfigDict, Field

from conveyor.checks.base import Check, CheckRequest
from conveyor.domain.model import Measurement
from conveyor.steps import StepContext
from conveyor.supervisor import minimal_environ, run_process

__all__ = ["CommandCheck", "CommandOptions", "check_environ"]


class CommandOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    argv: list[str] = Field(min_length=1)
    timeout: float = Field(default=300, gt=0)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None


class CommandCheck(Check):
    """Run ``argv``; exit 0 passes, any other exit fails."""

    name = "command"
    Options = CommandOptions

    def measure(self, request: CheckRequest, ctx: StepContext) -> Measurement:
        opts = cast(CommandOptions, request.options)
        env = check_environ(request, opts.env)
        outcome = run_process(opts.argv, env=env, cwd=opts.cwd, timeout=opts.timeout, ctx=ctx)
        if outcome.start_error is not None:
            return Measurement.errored(_start_failure(opts.argv[0], outcome.start_error))
        if outcome.error is not None:
            return Measurement.errored(outcome.error)
        if outcome.cancelled:
            return Measurement.errored(f"cancelled: {_shown(opts.argv)} stopped")
        if outcome.timed_out:
            return Measurement.errored(f"timed out after {opts.timeout:g}s: {_shown(opts.argv)}")
        assert outcome.exit_code is not None
        return _verdict(outcome.exit_code, outcome.last_line)


def check_environ(request: CheckRequest, extra: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a command check's process."""
    return minimal_environ() | request.environ() | dict(extra)


def _start_failure(program: str, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is not None and str(exc.filename) != program:
        reason += f": {exc.filename}"  # e.g. the cwd is missing, not the program
    return f"cannot run {program!r}: {reason}"


def _verdict(returncode: int, last_line: str) -> Measurement:
    if returncode == 0:
        return Measurement.passed(f"exit 0{_suffix(last_line)}", value="0")
    status = f"exit {returncode}" if returncode > 0 else f"killed by {_signal_name(-returncode)}"
    return Measurement.failed(f"{status}{_suffix(last_line)}", value=str(returncode))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _suffix(last_line: str) -> str:
    return f": {last_line[:200]}" if last_line else ""


def _shown(argv: list[str]) -> str:
    """The command on one short line, for messages."""
    return " ".join(" ".join(argv).split())[:200]
