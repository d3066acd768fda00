"""The ``command`` check: run a program; exit status 0 passes.

The program is started from an argv list, never through a shell, in a new process group (session) so
that a timeout or a cancel can stop it together with everything it started. Release facts reach it only
as environment variables:

- a few inherited variables (``PATH``, ``HOME``, ``LANG``, ...), nothing else from conveyor's own
  environment, so conveyor's secrets never leak into checks;
- ``CONVEYOR_APP``, ``CONVEYOR_ENV``, ``CONVEYOR_VERSION``, ``CONVEYOR_SHA``;
- each per-environment var, upper-cased, both as ``NAME`` and ``CONVEYOR_VAR_NAME`` (as drivers do);
- ``env`` from the options, last, so it wins.

Phases: exit 0 -> ``pass``; any other exit -> ``fail`` ("exit 3: <last output line>"); a timeout, a
missing executable or another failure to start -> ``error``; a cancel -> ``error`` ("cancelled"). Every
output line (stdout and stderr, merged) goes to the step log as it arrives.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import cast

from pydantic import BaseModel, ConfigDict, Field

from conveyor.checks.base import Check, CheckRequest
from conveyor.domain.model import Measurement
from conveyor.steps import StepContext

__all__ = ["CommandCheck", "CommandOptions", "check_environ"]

INHERITED_VARS = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL
DRAIN_AFTER_EXIT = 1.0  # seconds to keep reading output a background child still holds open
POLL = 0.1


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
        try:
            proc = subprocess.Popen(
                opts.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=check_environ(request, opts.env),
                cwd=opts.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            return Measurement.errored(_start_failure(opts.argv[0], exc))
        with proc:
            return _supervise(proc, opts, ctx)


def check_environ(request: CheckRequest, extra: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a command check's process."""
    env = {name: os.environ[name] for name in INHERITED_VARS if name in os.environ}
    env.update({f"CONVEYOR_VAR_{k.upper()}": v for k, v in request.vars.items()})
    env.update({k.upper(): v for k, v in request.vars.items()})
    env.update(
        CONVEYOR_APP=request.app,
        CONVEYOR_ENV=request.environment,
        CONVEYOR_VERSION=request.version,
        CONVEYOR_SHA=request.sha,
    )
    env.update(extra)
    return env


def _start_failure(program: str, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    if exc.filename is not None and str(exc.filename) != program:
        reason += f": {exc.filename}"  # e.g. the cwd is missing, not the program
    return f"cannot run {program!r}: {reason}"


def _supervise(proc: subprocess.Popen[bytes], opts: CommandOptions, ctx: StepContext) -> Measurement:
    output = _OutputLines(ctx)
    deadline = time.monotonic() + opts.timeout
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while proc.poll() is None:
            if ctx.cancelled.is_set():
                _stop(proc)
                return Measurement.errored(f"cancelled: {_shown(opts.argv)} stopped")
            if time.monotonic() >= deadline:
                _stop(proc)
                return Measurement.errored(f"timed out after {opts.timeout:g}s: {_shown(opts.argv)}")
            _read_ready(selector, output, POLL)
        _drain(selector, output)
    output.flush()
    return _verdict(proc.returncode, output.last)


def _read_ready(selector: selectors.BaseSelector, output: _OutputLines, timeout: float) -> None:
    """Read what is available within ``timeout``; stop watching the pipe at end of file."""
    for key, _ in selector.select(timeout):
        chunk = os.read(key.fd, 65536)
        if chunk:
            output.feed(chunk)
        else:
            selector.unregister(key.fileobj)


def _drain(selector: selectors.BaseSelector, output: _OutputLines) -> None:
    until = time.monotonic() + DRAIN_AFTER_EXIT
    while selector.get_map() and time.monotonic() < until:
        _read_ready(selector, output, POLL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, then SIGKILL it if it lingers."""
    _signal_group(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE)
    _signal_group(proc, signal.SIGKILL)
    proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


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


class _OutputLines:
    """Splits a byte stream into lines, logs each one, remembers the last non-empty one."""

    def __init__(self, ctx: StepContext) -> None:
        self._ctx = ctx
        self._pending = b""
        self.last = ""

    def feed(self, chunk: bytes) -> None:
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = b""

    def _emit(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        self._ctx.log(line)
        if line.strip():
            self.last = line.strip()
