"""The tether: a tiny wrapper that ties a step's command, and everything it starts, to the worker.

:mod:`conveyor.supervisor` never starts a driver's or check's command directly. It runs this file with
the Python interpreter (``python -I -S tether.py WORKER_PID CONTROL_FD KILL_GRACE -- argv...``) in a new
session, so the tether leads a fresh process group, and the tether starts the command in that group.
It imports nothing but the standard library, never conveyor, so that it starts in a few milliseconds.

The tether stays alive as the group's leader for as long as the command runs and ends the whole group
(SIGTERM, then SIGKILL after the kill grace) as soon as it learns that the worker is gone:

* the control socket: the worker holds the other end of a socket pair; when the worker dies, however it
  dies, the kernel closes that end and the tether reads end-of-file. Unlike ``PR_SET_PDEATHSIG`` this is
  tied to the worker *process*, not to the thread that started the tether, and works on every POSIX
  system (macOS included);
* on Linux, also a parent-death signal (SIGHUP), checked against the worker's pid, so a thread of the
  worker that exits early never ends a command whose worker is still alive.

On Linux the tether is also a child subreaper: a descendant orphaned inside the group (the ``sleep`` of
``sh -c 'sleep 15; ...'`` once ``sh`` is gone) becomes its child, so it knows when the group is empty and
reaps every zombie. When the command ends, its wait status is reported on the control socket, and
leftovers in the group (background jobs the command did not wait for) are ended too: a step's processes
never outlive the step.

The protocol on the control socket, tether to worker, one line each: ``started PID`` or ``error ERRNO``
(the command could not be started), then ``exited STATUS`` (a raw wait status).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def main(args: list[str]) -> int:
    worker, control, grace, command = int(args[0]), int(args[1]), float(args[2]), args[4:]
    os.set_inheritable(control, False)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        # A handler, not SIG_IGN: the worker signals the whole group and the command acts on it; the tether
        # only wakes up. Handlers, unlike ignored signals, are reset for the command by exec.
        signal.signal(sig, _wake)
    subreaper = _tie_to_worker(worker)
    if _worker_gone(worker, control):
        return 1
    try:
        pid = os.posix_spawnp(command[0], command, os.environ, setsigdef=_RESET_SIGNALS)
    except OSError as exc:
        _say(control, f"error {exc.errno or 0}")
        return 127
    _say(control, f"started {pid}")
    status = None
    while status is None:
        status = _reap(pid)
        if status is not None:
            break
        ready, _, _ = select.select([control, wake_read], [], [])
        if wake_read in ready:
            os.read(wake_read, 4096)
        if _worker_gone(worker, control):
            _end_group(grace, subreaper, wake_read)
            return 1
    _say(control, f"exited {status}")
    if subreaper:
        if _reap(None) is not False:  # leftovers in the group: end them too
            _end_group(grace, subreaper, wake_read)
    else:
        _signal_group(signal.SIGTERM)  # elsewhere there is no telling whether anyone is left; ask them to go
    return 0


def _wake(signum: int, frame: object) -> None:
    """Does nothing: the wakeup fd already woke the main loop."""


def _tie_to_worker(worker: int) -> bool:
    """Linux only: SIGHUP when the worker dies, and become a child subreaper. True if a subreaper."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGHUP, 0, 0, 0)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _worker_gone(worker: int, control: int) -> bool:
    if os.getppid() != worker:
        return True  # reparented: the worker died (a parent-death signal, or before we could ask for one)
    ready, _, _ = select.select([control], [], [], 0)
    if not ready:
        return False
    try:
        return os.read(control, 64) == b""  # end of file: the kernel closed the worker's end
    except OSError:
        return True


def _reap(pid: int | None) -> int | bool | None:
    """Reap every child that ended. With ``pid``: its wait status once it ended, else None. Without:
    False once no child is left, else None."""
    found = None
    while True:
        try:
            child, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found if pid is not None else False
        if child == 0:
            return found
        if child == pid:
            found = status


def _end_group(grace: float, subreaper: bool, wake_read: int) -> None:
    """SIGTERM the group; SIGKILL it (the tether included) if anyone may still be there after ``grace``.

    Only a subreaper can tell that everyone is gone; elsewhere the tether waits the whole grace."""
    _signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (left := deadline - time.monotonic()) > 0:
        if subreaper and _reap(None) is False:
            return
        if select.select([wake_read], [], [], min(0.05, left))[0]:
            os.read(wake_read, 4096)
    _signal_group(signal.SIGKILL)


def _signal_group(sig: signal.Signals) -> None:
    try:  # noqa: SIM105 - contextlib would be one more import to start the tether
        os.killpg(0, sig)
    except OSError:
        pass


def _say(control: int, line: str) -> None:
    try:  # noqa: SIM105 - contextlib would be one more import to start the tether
        os.write(control, f"{line}\n".encode())
    except OSError:
        pass  # the worker is gone; the main loop finds out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
