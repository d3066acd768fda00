"""Running child processes for drivers: argv lists only, never a shell.

Two shapes of process live here:

* :func:`run_process` runs a command to completion (a deploy script, ``git``). Its stdout and stderr are
  merged and streamed line by line into the step log as they arrive. It honours a timeout and the step's
  cancellation by ending the command's whole process group (SIGTERM, then SIGKILL after a grace period),
  and it never raises for a command that cannot start: the reason comes back in :class:`ProcessResult`.
* :func:`spawn_detached` starts a long-lived process (the ``local`` driver's app) in its own session so it
  outlives conveyor. Such a process is later named by its pid *and* its :func:`process_identity` (its
  start time), so that :func:`stop_group` never signals a recycled pid that now belongs to someone else.

Every child starts with ``start_new_session=True``: its pid is its process-group id, so signalling the
group reaches whatever it spawned.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from conveyor.steps import StepContext

#: Variables a child inherits from conveyor's own environment; everything else it gets is explicit.
INHERITED_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL for a command being stopped
OUTPUT_GRACE = 2.0  # seconds to keep reading output after a command ended
_MAX_LINE = 64 * 1024

# Detached children started by this process, kept so they can be reaped (no zombies, no ResourceWarning).
_children: dict[int, subprocess.Popen[bytes]] = {}
_exit_codes: dict[int, int] = {}
_children_lock = threading.Lock()


@dataclass(frozen=True)
class ProcessResult:
    """How a command ended. ``exit_code`` is None when it never started (``error`` says why) or when it
    had to be killed; a negative code means it died of that signal."""

    exit_code: int | None
    duration: float
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not (self.timed_out or self.cancelled)


def minimal_environ(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The few variables of conveyor's own environment a child process may inherit."""
    source = os.environ if source is None else source
    return {k: source[k] for k in INHERITED_VARIABLES if k in source}


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
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:
        return ProcessResult(None, time.monotonic() - started, error=describe_start_error(argv, cwd, exc))
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True)
    reader.start()
    timed_out = cancelled = False
    deadline = started + timeout
    while proc.poll() is None:
        _drain(lines, ctx.log)
        if ctx.cancelled.is_set() or time.monotonic() >= deadline:
            cancelled = ctx.cancelled.is_set()
            timed_out = not cancelled
            _end_group(proc, kill_grace)
            break
        _wait_quietly(proc, 0.05)
    reader.join(OUTPUT_GRACE)
    _drain(lines, ctx.log)
    if reader.is_alive():
        ctx.log("(a leftover process still holds the output open; no longer reading it)")
    code = None if (timed_out or cancelled) else proc.returncode
    return ProcessResult(code, time.monotonic() - started, timed_out=timed_out, cancelled=cancelled)


def describe_start_error(argv: Sequence[str], cwd: str | Path | None, exc: Exception) -> str:
    """A one-line reason a process could not start, for a failed DeployResult."""
    if isinstance(exc, FileNotFoundError):
        if cwd is not None and not Path(cwd).is_dir():
            return f"working directory not found: {cwd}"
        return f"executable not found: {argv[0] if argv else '(empty argv)'}"
    if isinstance(exc, PermissionError):
        return f"not permitted to run {argv[0]}: {exc.strerror}"
    return f"could not start {argv[0] if argv else '(empty argv)'}: {exc}"


def _pump(stream: IO[bytes], put: Callable[[str], None]) -> None:
    with stream:
        for raw in iter(lambda: stream.readline(_MAX_LINE), b""):
            put(raw.decode("utf-8", "replace").rstrip("\r\n"))


def _drain(lines: queue.Queue[str], log: Callable[[str], None]) -> None:
    while True:
        try:
            log(lines.get_nowait())
        except queue.Empty:
            return


def _wait_quietly(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def _end_group(proc: subprocess.Popen[bytes], grace: float) -> None:
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


def spawn_detached(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log_path: Path) -> int:
    """Start a long-lived process in its own session, output appended to ``log_path``; return its pid.

    Raises OSError or ValueError when it cannot start (see :func:`describe_start_error`).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with _children_lock:
        _children[proc.pid] = proc
        _exit_codes.pop(proc.pid, None)  # a stale code from an earlier process with this pid
    return proc.pid


def _reap_children() -> None:
    with _children_lock:
        for pid, proc in list(_children.items()):
            if proc.poll() is not None:
                _exit_codes[pid] = proc.returncode
                del _children[pid]


def detached_exit_code(pid: int) -> int | None:
    """The exit code of a process :func:`spawn_detached` started and that has ended, if known."""
    _reap_children()
    with _children_lock:
        return _exit_codes.pop(pid, None)


def process_identity(pid: int) -> str | None:
    """A text naming this very process (its start time), or None if no live process has this pid.

    A pid can be reused once its process is gone; the start time cannot, so (pid, identity) is safe to
    record and compare later, even from another conveyor process.
    """
    _reap_children()
    if pid <= 0:
        return None
    if Path("/proc/self/stat").exists():
        return _proc_identity(pid)
    return _ps_identity(pid)


def _proc_identity(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return f"proc:{fields[19]}"  # field 22 of stat(5): start time in clock ticks since boot


def _ps_identity(pid: int) -> str | None:
    try:
        out = subprocess.run(["ps", "-o", "stat=,lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    state, _, started = out.stdout.strip().partition(" ")
    if out.returncode != 0 or not started or state.startswith("Z"):
        return None
    return f"ps:{started.strip()}"


def stop_group(pid: int, identity: str, timeout: float) -> str:
    """Stop the process group of ``pid`` if ``pid`` is still the process named by ``identity``.

    SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns "not running", "stopped" or "killed".
    """
    if process_identity(pid) != identity:
        return "not running"
    signal_group(pid, signal.SIGTERM)
    if _wait_gone(pid, identity, timeout):
        return "stopped"
    if process_identity(pid) == identity:
        signal_group(pid, signal.SIGKILL)
    _wait_gone(pid, identity, 10.0)
    return "killed"


def _wait_gone(pid: int, identity: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process_identity(pid) == identity:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
