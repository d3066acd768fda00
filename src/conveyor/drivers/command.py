"""The ``command`` driver: deploy by running a command the operator configured.

The command is an argv list, run without a shell, by :mod:`conveyor.supervisor` (so it and everything it
starts end with a timeout, a cancel or the worker's death). Release facts reach it only as environment
variables (``CONVEYOR_APP``, ``CONVEYOR_ENV``, ``CONVEYOR_VERSION``, ``CONVEYOR_SHA``, ``CONVEYOR_REPO``,
``CONVEYOR_ATTEMPT``, ``CONVEYOR_LEASE_EXPIRES_AT`` and the environment's vars, see
:meth:`DeployRequest.environ`), never as text spliced into a command line, so a version label or branch
name cannot inject anything. The child's environment is a few inherited variables (PATH, HOME, LANG, ...),
then the release facts, then ``env`` from the options.

Exit code 0 means deployed. A non-zero exit, a timeout, a cancellation or a command that cannot start is a
failed :class:`DeployResult`, never an exception. Idempotency is the command's job: it is run again with
the same facts after a crash, so it should converge ("deploy X" when X is already live does nothing).
"""

from __future__ import annotations

import shlex
from typing import Annotated, cast

from pydantic import BaseModel, ConfigDict, Field

from conveyor.drivers.base import DeployRequest, DeployResult, Driver
from conveyor.steps import StepContext
from conveyor.supervisor import ProcessResult, minimal_environ, run_process


class CommandOptions(BaseModel):
    """``argv`` is run as is; ``cwd`` is absolute or relative to conveyor's own working directory
    (default: conveyor's working directory); ``timeout`` is in seconds."""

    model_config = ConfigDict(extra="forbid")

    argv: Annotated[list[str], Field(min_length=1)]
    timeout: Annotated[float, Field(gt=0)] = 600.0
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class CommandDriver(Driver):
    name = "command"
    Options = CommandOptions
    uses_state_dir = False  # its command runs in its own ``cwd``; conveyor's folder is not passed to it

    def deploy(self, request: DeployRequest, ctx: StepContext) -> DeployResult:
        opts = cast(CommandOptions, request.options)
        if ctx.cancelled.is_set():
            return DeployResult(ok=False, message="cancelled")
        env = minimal_environ() | request.environ() | opts.env
        ctx.log(f"$ {shlex.join(opts.argv)}")
        outcome = run_process(opts.argv, env=env, cwd=opts.cwd, timeout=opts.timeout, ctx=ctx)
        return _result(outcome, opts)


def _result(outcome: ProcessResult, opts: CommandOptions) -> DeployResult:
    details: dict[str, object] = {"exit_code": outcome.exit_code, "duration": round(outcome.duration, 3)}
    if outcome.error is not None:
        return DeployResult(ok=False, message=outcome.error, details=details)
    if outcome.cancelled:
        return DeployResult(ok=False, message="cancelled", details=details)
    if outcome.timed_out:
        return DeployResult(ok=False, message=f"timed out after {opts.timeout:g}s", details=details)
    if outcome.exit_code != 0:
        return DeployResult(ok=False, message=_exit_message(outcome.exit_code), details=details)
    return DeployResult(ok=True, message="command succeeded", details=details)


def _exit_message(code: int | None) -> str:
    if code is not None and code < 0:
        return f"command killed by signal {-code}"
    return f"command exited with code {code}"
