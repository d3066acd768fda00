"""The tether: a tiny wrapper that ties a step's command, and everything it starts, to the worker.

:mod:`conveyor.supervisor` never starts a driver's or check's command directly. It runs this file with
the Python interpreter (``python -I -S tether.py WORKER_PID CONTROL_FD KILL_GRACE UNSET -- argv...``) in a new
session, so the tether leads a fresh process group, and the tether starts the command in that group.
It imports nothing but the standard library, never conveyor, so that it starts in a few milliseconds.
``UNSET`` names (comma-separated) the variables the interpreter may add to the environment it was given
(``LC_CTYPE``, by locale coercion) that the command must not get.

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

The command's output (stdout and stderr, merged) goes through the tether to the worker, so that when the
worker is gone the tether keeps reading and discarding it: a command cleaning up after SIGTERM is not
killed by SIGPIPE for writing a line (``sh`` reports a terminated background job on stderr).

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
_CHUNK = 65536


def main(args: list[str]) -> int:
    worker, control, grace, command = int(args[0]), int(args[1]), float(args[2]), args[5:]
    for name in filter(None, args[3].split(",")):
        os.environ.pop(name, None)
    os.set_inheritable(control, False)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        # A handler, not SIG_IGN: the worker signals the whole group and the command acts on it; the tether
        # only wakes up. Handlers, unlike ignored signals, are reset for the command by exec.
        signal.signal(sig, _wake)
    tether = Tether(worker, control, wake_read, grace, _tie_to_worker())
    if tether.worker_gone():
        return 1
    return tether.run(command)


class Tether:
    def __init__(self, worker: int, control: int, wake_read: int, grace: float, subreaper: bool) -> None:
        self.worker, self.control, self.wake_read, self.grace = worker, control, wake_read, grace
        self.subreaper = subreaper
        self.output: int | None = None

    def run(self, command: list[str]) -> int:
        output, into = os.pipe()
        dup = [(os.POSIX_SPAWN_DUP2, into, 1), (os.POSIX_SPAWN_DUP2, into, 2)]
        try:
            pid = os.posix_spawnp(command[0], command, os.environ, file_actions=dup, setsigdef=_RESET_SIGNALS)
        except OSError as exc:
            self.say(f"error {exc.errno or 0}")
            return 127
        finally:
            os.close(into)
        os.set_blocking(output, False)
        self.output = output
        self.say(f"started {pid}")
        status = None
        while status is None:
            status = _reap(pid)
            if status is not None:
                break
            self.wait([self.control], None)
            if self.worker_gone():
                self.end_group()
                return 1
        self.say(f"exited {status}")
        if not self.subreaper:
            _signal_group(signal.SIGTERM)  # no telling whether anyone is left in the group; ask them to go
        elif _reap(None) is not False:
            self.end_group()  # leftovers in the group: background jobs the command did not wait for
        until = time.monotonic() + 1.0  # the last of the output, unless a process that left the group holds it
        while self.output is not None and time.monotonic() < until and self.wait([], 0.1):
            pass
        return 0

    def wait(self, fds: list[int], timeout: float | None) -> bool:
        """Wait for a signal, output or one of ``fds``; forward the output. False if nothing happened."""
        watched = [self.wake_read, *fds, *([self.output] if self.output is not None else [])]
        ready, _, _ = select.select(watched, [], [], timeout)
        if self.wake_read in ready:
            os.read(self.wake_read, 4096)
        if self.output is not None and self.output in ready:
            self.forward(self.output)
        return bool(ready)

    def forward(self, output: int) -> None:
        try:
            chunk = os.read(output, _CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            os.close(output)
            self.output = None
            return
        view = memoryview(chunk)
        try:
            while view:  # a signal (SIGCHLD) can cut a write short
                view = view[os.write(1, view) :]
        except OSError:
            pass  # the worker is gone: the output is dropped, the command never sees a broken pipe

    def worker_gone(self) -> bool:
        if os.getppid() != self.worker:
            return True  # reparented: the worker died (a parent-death signal, or before we could ask for one)
        ready, _, _ = select.select([self.control], [], [], 0)
        if not ready:
            return False
        try:
            return os.read(self.control, 64) == b""  # end of file: the kernel closed the worker's end
        except OSError:
            return True

    def end_group(self) -> None:
        """SIGTERM the group; SIGKILL it (the tether included) if anyone may still be there after the grace.

        Only a subreaper can tell that everyone is gone; elsewhere the tether waits the whole grace."""
        _signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while (left := deadline - time.monotonic()) > 0:
            if self.subreaper and _reap(None) is False:
                return
            self.wait([], min(0.05, left))
        _signal_group(signal.SIGKILL)

    def say(self, line: str) -> None:
        try:  # noqa: SIM105 - contextlib would be one more import to start the tether
            os.write(self.control, f"{line}\n".encode())
        except OSError:
            pass  # the worker is gone; the main loop finds out


def _wake(signum: int, frame: object) -> None:
    """Does nothing: the wakeup fd already woke the main loop."""


def _tie_to_worker() -> bool:
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


def _signal_group(sig: signal.Signals) -> None:
    try:  # noqa: SIM105 - contextlib would be one more import to start the tether
        os.killpg(0, sig)
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
