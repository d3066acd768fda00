"""The one supervisor of the processes a step starts: every driver and check runs commands through it.

:func:`run_process` runs an argv list (never a shell) to completion:

* its environment is built in one place: :func:`minimal_environ` (the few variables inherited from
  conveyor's own environment, so conveyor's secrets never leak) plus :func:`release_environ` (the
  release facts, ``CONVEYOR_*``) plus the plugin's own variables;
* stdout and stderr are merged and streamed, line by line, into the step log as they arrive;
* a timeout and the step's cancellation (``StepContext.cancelled``) end the command's whole process
  group: SIGTERM, then SIGKILL after :data:`KILL_GRACE` seconds;
* the command is started through :mod:`conveyor.tether`, which leads its process group and ends that
  group when the worker dies, even by ``kill -9``; a step's processes never outlive their worker (see
  docs/scaling.md for the guarantee on each platform);
* a command that cannot start is not an exception: the reason comes back in :class:`ProcessResult`.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from conveyor.steps import StepContext

#: Variables a child inherits from conveyor's own environment; everything else it gets is explicit.
INHERITED_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL for a process group being stopped
OUTPUT_GRACE = 2.0  # seconds to keep reading output after a command ended
START_TIMEOUT = 30.0  # seconds the tether may take to report that the command started
TETHER = Path(__file__).with_name("tether.py")
_INTERPRETER_ADDS = ("LC_CTYPE",)  # Python's locale coercion sets it in the tether; the command must not see it
_MAX_LINE = 64 * 1024
_POLL = 0.05


@dataclass(frozen=True)
class ProcessResult:
    """How a command ended.

    ``exit_code`` is None when it never started (``error`` says why, ``start_error`` is the OSError) or
    when it had to be stopped; a negative code means it died of that signal. ``last_line`` is the last
    non-empty line of its output."""

    exit_code: int | None
    duration: float
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None
    start_error: OSError | None = None
    last_line: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.cancelled)


def minimal_environ(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The few variables of conveyor's own environment a child process may inherit."""
    source = os.environ if source is None else source
    return {k: source[k] for k in INHERITED_VARIABLES if k in source}


def release_environ(
    *,
    app: str,
    environment: str,
    version: str,
    sha: str,
    repo: str,
    vars: Mapping[str, str],
    attempt: int,
    lease_expires_at: datetime | None,
    step_id: int | None = None,
) -> dict[str, str]:
    """The variables naming the release and the step, given to every process a driver or check starts.

    Each per-environment var comes as ``NAME`` and ``CONVEYOR_VAR_NAME``; the release facts come after
    them, so a var cannot hide a fact. ``CONVEYOR_STEP_ID`` and ``CONVEYOR_ATTEMPT`` together are the
    token conveyor fences its own writes with; ``CONVEYOR_LEASE_EXPIRES_AT`` is the step's lease expiry
    as of its claim (ISO 8601, UTC): heartbeats extend the lease later, this value does not change.
    """
    env = {f"CONVEYOR_VAR_{k.upper()}": v for k, v in vars.items()}
    env.update({k.upper(): v for k, v in vars.items()})
    env.update(
        CONVEYOR_APP=app,
        CONVEYOR_ENV=environment,
        CONVEYOR_VERSION=version,
        CONVEYOR_SHA=sha,
        CONVEYOR_REPO=repo,
        CONVEYOR_ATTEMPT=str(attempt),
    )
    if step_id is not None:
        env["CONVEYOR_STEP_ID"] = str(step_id)
    if lease_expires_at is not None:
        env["CONVEYOR_LEASE_EXPIRES_AT"] = iso_utc(lease_expires_at)
    return env


def iso_utc(moment: datetime) -> str:
    """``2026-01-31T12:00:05.250Z``; a naive datetime is taken to be UTC already."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | Path | None,
    timeout: float,
    ctx: StepContext,
    kill_grace: float = KILL_GRACE,
) -> ProcessResult:
    """Run ``argv`` to completion, streaming its output into ``ctx.log``; see the module docstring."""
    started = time.monotonic()
    argv = list(argv)
    if not argv:
        return ProcessResult(None, 0.0, error="could not start (empty argv)")
    ours, theirs = socket.socketpair()
    try:
        try:
            proc = _start_tether(argv, env, cwd, theirs.fileno(), kill_grace)
        finally:
            theirs.close()
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in argv, env or cwd
        ours.close()
        refused = exc if isinstance(exc, OSError) else OSError(str(exc))
        return ProcessResult(
            None, time.monotonic() - started, error=describe_start_error(argv, cwd, exc), start_error=refused
        )
    try:
        return _supervise(proc, ours, argv, cwd, started, timeout, kill_grace, ctx)
    finally:  # not ``with proc``: closing its stdout would wait on a reader stuck behind a leftover process
        ours.close()
        if proc.poll() is None:  # only after an exception
            end_group(proc, 0)


def _start_tether(
    argv: list[str], env: Mapping[str, str], cwd: str | Path | None, control: int, kill_grace: float
) -> subprocess.Popen[bytes]:
    unset = ",".join(name for name in _INTERPRETER_ADDS if name not in env)
    tether = [sys.executable, "-I", "-S", str(TETHER), str(os.getpid()), str(control), f"{kill_grace:g}", unset, "--"]
    return subprocess.Popen(
        tether + argv,
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        pass_fds=(control,),
    )


def _supervise(
    proc: subprocess.Popen[bytes],
    control: socket.socket,
    argv: list[str],
    cwd: str | Path | None,
    started: float,
    timeout: float,
    kill_grace: float,
    ctx: StepContext,
) -> ProcessResult:
    reports = _Reports(control)
    lines: queue.Queue[str] = queue.Queue()
    output = _Output(ctx.log)
    assert proc.stdout is not None
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True)
    reader.start()
    refused = reports.first(proc)
    if refused is not None:
        proc.wait()
        reader.join(OUTPUT_GRACE)
        output.drain(lines)
        return ProcessResult(
            None, time.monotonic() - started, error=describe_start_error(argv, cwd, refused), start_error=refused
        )
    timed_out = cancelled = False
    deadline = started + timeout
    while proc.poll() is None:
        output.drain(lines)
        if ctx.cancelled.is_set() or time.monotonic() >= deadline:
            cancelled = ctx.cancelled.is_set()
            timed_out = not cancelled
            end_group(proc, kill_grace)
            break
        _wait_quietly(proc, _POLL)
    reader.join(OUTPUT_GRACE)
    output.drain(lines)
    if reader.is_alive():
        ctx.log("(a leftover process still holds the output open; no longer reading it)")
    duration = time.monotonic() - started
    if timed_out or cancelled:
        return ProcessResult(None, duration, timed_out=timed_out, cancelled=cancelled, last_line=output.last)
    status = reports.exit_status()
    code = os.waitstatus_to_exitcode(status) if status is not None else proc.returncode
    return ProcessResult(code, duration, last_line=output.last)


class _Reports:
    """The tether's lines on the control socket: ``started PID`` or ``error ERRNO``, then ``exited STATUS``."""

    def __init__(self, control: socket.socket) -> None:
        self._control = control
        self._buffer = b""
        self._eof = False

    def first(self, proc: subprocess.Popen[bytes]) -> OSError | None:
        """Wait for the start report; the OSError that kept the command from starting, if any."""
        deadline = time.monotonic() + START_TIMEOUT
        self._control.settimeout(_POLL)
        while b"\n" not in self._buffer and not self._eof:
            if time.monotonic() >= deadline:
                end_group(proc, 0)
                return OSError(f"the tether did not report within {START_TIMEOUT:g}s")
            self._read()
        line = self._take()
        if line.startswith("error "):
            number = int(line.split()[1])
            return OSError(number, os.strerror(number))
        if not line.startswith("started "):
            proc.wait()
            return OSError(f"the tether ended before starting the command (exit code {proc.returncode})")
        return None

    def exit_status(self) -> int | None:
        """The command's raw wait status, once the tether has exited; None if it never reported one."""
        self._control.settimeout(1.0)
        while not self._eof:
            self._read()
        while self._buffer:
            line = self._take()
            if line.startswith("exited "):
                return int(line.split()[1])
        return None

    def _read(self) -> None:
        try:
            chunk = self._control.recv(4096)
        except TimeoutError:
            return
        except OSError:
            chunk = b""
        self._eof = not chunk
        self._buffer += chunk

    def _take(self) -> str:
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("ascii", "replace")


class _Output:
    """Logs output lines as they come and remembers the last non-empty one."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self.last = ""

    def drain(self, lines: queue.Queue[str]) -> None:
        while True:
            try:
                line = lines.get_nowait()
            except queue.Empty:
                return
            self._log(line)
            if line.strip():
                self.last = line.strip()


def describe_start_error(argv: Sequence[str], cwd: str | Path | None, exc: Exception) -> str:
    """A one-line reason a process could not start."""
    program = argv[0] if argv else "(empty argv)"
    if isinstance(exc, FileNotFoundError):
        if cwd is not None and not Path(cwd).is_dir():
            return f"working directory not found: {cwd}"
        return f"executable not found: {program}"
    if isinstance(exc, PermissionError):
        return f"not permitted to run {program}: {exc.strerror}"
    return (
        f"could not start {program}: {exc.strerror or exc}"
        if isinstance(exc, OSError)
        else f"could not start {program}: {exc}"
    )


def _pump(stream: IO[bytes], put: Callable[[str], None]) -> None:
    with stream:
        for raw in iter(lambda: stream.readline(_MAX_LINE), b""):
            put(raw.decode("utf-8", "replace").rstrip("\r\n"))


def _wait_quietly(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def end_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the process group ``proc`` leads, then SIGKILL it if it lingers past ``grace`` seconds."""
    signal_group(proc.pid, signal.SIGTERM)
    if not _wait_quietly(proc, grace):
        signal_group(proc.pid, signal.SIGKILL)
        _wait_quietly(proc, 10.0)


def signal_group(pid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the process group led by ``pid`` (or to ``pid`` alone if it left its group)."""
    try:
        os.killpg(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            return False
    return True
