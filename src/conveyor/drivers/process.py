"""Long-lived processes a driver leaves running: the ``local`` driver's app.

Steps run their commands through :mod:`conveyor.supervisor`, which ties them to the worker. The one
exception lives here: :func:`spawn_detached` starts the app a ``local`` deploy puts in place in its own
session so that it *outlives* the step and conveyor, as a service does. Such a process is later named by
its pid *and* its :func:`process_identity` (its start time), so that :func:`stop_group` never signals a
recycled pid that now belongs to someone else.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from conveyor.supervisor import signal_group

# Detached children started by this process, kept so they can be reaped (no zombies, no ResourceWarning).
_children: dict[int, subprocess.Popen[bytes]] = {}
_exit_codes: dict[int, int] = {}
_children_lock = threading.Lock()


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
