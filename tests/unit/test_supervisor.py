"""The one supervisor of step processes, and its tether, with real processes.

``sh -c '...'`` commands put a grandchild (``sleep``) in the process group, so every test that ends a
command also proves the whole group ends, not only the process conveyor started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor.checks.base import CheckRequest
from conveyor.checks.command import CommandOptions, check_environ
from conveyor.drivers.base import DeployRequest
from conveyor.steps import ListLog, StepContext
from conveyor.supervisor import KILL_GRACE, ProcessResult, iso_utc, minimal_environ, release_environ, run_process

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
SRC = Path(__file__).resolve().parents[2] / "src"


def alive(pid: int) -> bool:
    """True while the process runs; a zombie awaiting its reaper counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (FileNotFoundError, ProcessLookupError):
            return False
    return True


def wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read_pid(path: Path, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"no pid in {path}"
        time.sleep(0.01)
    return int(path.read_text())


def sleeper(pid_file: Path, seconds: int = 30) -> list[str]:
    """``sh`` waiting on a background ``sleep`` (a grandchild) whose pid it writes to ``pid_file``."""
    return ["sh", "-c", f'sleep {seconds} & echo "$!" > "$1"; wait', "sh", str(pid_file)]


def run(
    argv: list[str], ctx: StepContext | None = None, timeout: float = 30.0, cwd: str | None = None
) -> ProcessResult:
    return run_process(argv, env=minimal_environ(), cwd=cwd, timeout=timeout, ctx=ctx or StepContext())


def test_exit_codes_and_signals_come_back_as_the_command_ended() -> None:
    assert run(["sh", "-c", "exit 0"]).ok
    assert run(["sh", "-c", "exit 3"]).exit_code == 3
    killed = run(["sh", "-c", "kill -KILL $$"])
    assert (killed.exit_code, killed.ok) == (-signal.SIGKILL, False)


def test_output_is_streamed_line_by_line_while_the_command_runs() -> None:
    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    ctx = StepContext(log=lambda line: seen.append((time.monotonic() - started, line)))
    result = run(["sh", "-c", "echo one; echo two >&2; sleep 1.5; printf three"], ctx)
    assert result.ok
    assert [line for _, line in seen] == ["one", "two", "three"]
    assert seen[0][0] < 1.0, "the first line waited for the command to end"
    assert result.last_line == "three"


def test_a_timeout_ends_the_whole_group() -> None:
    pid_file = Path(f"/tmp/conveyor-test-{os.getpid()}-timeout.pid")
    try:
        started = time.monotonic()
        result = run(sleeper(pid_file), timeout=0.5)
        grandchild = read_pid(pid_file)
        assert (result.timed_out, result.exit_code, result.ok) == (True, None, False)
        assert time.monotonic() - started < 0.5 + KILL_GRACE
        assert wait_gone(grandchild, 1.0)
    finally:
        pid_file.unlink(missing_ok=True)


def test_a_cancel_ends_the_whole_group_and_sigkill_follows_the_grace(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleep.pid"
    argv = ["sh", "-c", f'trap "" TERM; sleep 30 & echo "$!" > {pid_file}; wait']  # the sleep ignores TERM too
    ctx = StepContext()
    timer = threading.Timer(0.5, ctx.cancelled.set)
    timer.start()
    started = time.monotonic()
    result = run(argv, ctx)
    elapsed = time.monotonic() - started
    assert (result.cancelled, result.timed_out, result.exit_code) == (True, False, None)
    assert KILL_GRACE <= elapsed < 0.5 + KILL_GRACE + 2
    assert wait_gone(read_pid(pid_file), 1.0)


def test_background_jobs_end_with_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleep.pid"
    result = run(["sh", "-c", f'sleep 30 & echo "$!" > {pid_file}; echo deployed'])
    assert result.ok and result.last_line == "deployed"
    assert wait_gone(read_pid(pid_file), 1.0)


def test_a_command_that_cannot_start_is_a_result_not_an_exception(tmp_path: Path) -> None:
    missing = run(["conveyor-no-such-program-xyz"])
    assert isinstance(missing.start_error, FileNotFoundError)
    assert missing.error == "executable not found: conveyor-no-such-program-xyz"
    no_dir = run(["true"], cwd=str(tmp_path / "nowhere"))
    assert no_dir.error == f"working directory not found: {tmp_path / 'nowhere'}"
    denied = run([str(tmp_path)])
    assert isinstance(denied.start_error, PermissionError)
    assert denied.exit_code is None and not denied.ok


def test_release_facts_are_the_same_for_drivers_and_checks(tmp_path: Path) -> None:
    expires = datetime(2026, 1, 31, 12, 0, 5, 250000, tzinfo=UTC)
    facts = {
        "app": "shop",
        "environment": "staging",
        "version": "1.2.3",
        "sha": "0" * 40,
        "repo": str(tmp_path / "mirror.git"),
        "vars": {"region": "eu-west"},
        "state_dir": tmp_path,
        "attempt": 2,
        "lease_expires_at": expires,
        "step_id": 41,
    }
    deploy = DeployRequest(options=CommandOptions(argv=["x"]), **facts)  # type: ignore[arg-type]
    check = CheckRequest(options=CommandOptions(argv=["x"]), **facts)  # type: ignore[arg-type]
    assert deploy.environ() == check.environ()
    env = check_environ(check, {"EXTRA": "1"})
    assert env["CONVEYOR_REPO"] == str(tmp_path / "mirror.git")
    assert env["CONVEYOR_ATTEMPT"] == "2"
    assert env["CONVEYOR_STEP_ID"] == "41"
    assert env["CONVEYOR_LEASE_EXPIRES_AT"] == "2026-01-31T12:00:05.250Z"
    assert env["REGION"] == env["CONVEYOR_VAR_REGION"] == "eu-west"
    assert env["EXTRA"] == "1"


def test_lease_expiry_is_written_in_utc() -> None:
    east = datetime(2026, 1, 31, 14, 0, tzinfo=UTC).astimezone(tz=None)
    assert iso_utc(east) == "2026-01-31T14:00:00.000Z"
    assert iso_utc(datetime(2026, 1, 31, 14, 0)) == "2026-01-31T14:00:00.000Z"  # naive is UTC already
    env = release_environ(
        app="a", environment="e", version="v", sha="s", repo="r", vars={}, attempt=1, lease_expires_at=None
    )
    assert "CONVEYOR_LEASE_EXPIRES_AT" not in env and "CONVEYOR_STEP_ID" not in env


def test_the_command_gets_only_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_DATABASE_PASSWORD", "hunter2")
    env = {"PATH": os.environ["PATH"], "CONVEYOR_ATTEMPT": "1"}  # no LANG: Python would coerce the C locale
    log = ListLog()
    assert run_process(["env"], env=env, cwd=None, timeout=30, ctx=StepContext(log=log)).ok
    seen = dict(line.split("=", 1) for line in log.lines)
    assert seen == env  # nothing of the tether's own leaks in (LC_CTYPE, by locale coercion)


# -- the tether, when its worker dies ------------------------------------------------------------------

WORKER = """\
import sys, threading, time
sys.path.insert(0, {src!r})
from conveyor.steps import StepContext
from conveyor.supervisor import minimal_environ, run_process

argv = {argv!r}
def step():
    run_process(argv, env=minimal_environ(), cwd=None, timeout=60, ctx=StepContext())
{start}
time.sleep(60)
"""


def start_worker(tmp_path: Path, argv: list[str], start: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(src=str(SRC), argv=argv, start=textwrap.dedent(start)))
    return subprocess.Popen([sys.executable, str(script)])


def test_a_killed_worker_takes_the_whole_group_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "sleep.pid"
    worker = start_worker(tmp_path, sleeper(pid_file), "threading.Thread(target=step, daemon=True).start()")
    try:
        grandchild = read_pid(pid_file)
        assert alive(grandchild)
        worker.kill()
        worker.wait(10)
        assert wait_gone(grandchild, 1.0), "the deploy outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()


def test_the_thread_that_started_it_may_end_first(tmp_path: Path) -> None:
    """A parent-death signal fires when the *thread* that forked exits: the tether checks the worker's
    pid, so a pool thread that ends does not end a command whose worker lives on."""
    pid_file = tmp_path / "sleep.pid"
    start = """\
    import socket, subprocess
    from conveyor.supervisor import _start_tether
    kept = []
    def start_and_leave():
        ours, theirs = socket.socketpair()
        kept.append((ours, _start_tether(argv, minimal_environ(), None, theirs.fileno(), 3.0)))
        theirs.close()
    thread = threading.Thread(target=start_and_leave)
    thread.start()
    thread.join()
    """
    worker = start_worker(tmp_path, sleeper(pid_file), start)
    try:
        grandchild = read_pid(pid_file)
        time.sleep(0.5)
        assert alive(grandchild), "the command ended with the thread that started it"
        worker.kill()
        worker.wait(10)
        assert wait_gone(grandchild, 1.0)
    finally:
        if worker.poll() is None:
            worker.kill()


def test_commands_started_at_once_from_many_threads_each_die_with_nothing_else(tmp_path: Path) -> None:
    """The worker's end of each control socket is never inherited by another command's tether; if it
    were, that tether would keep a dead worker's command alive."""
    results = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(run(["sh", "-c", f"sleep 0.{i % 5 + 1}; exit {i}"])))
        for i in range(12)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(r.exit_code for r in results) == list(range(12))


def test_lease_expiry_example_is_parseable_by_date() -> None:
    stamp = iso_utc(datetime.now(UTC) + timedelta(seconds=15))
    out = subprocess.run(["date", "-u", "-d", stamp, "+%s"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip("date without -d (not GNU date)")
    assert abs(int(out.stdout) - (datetime.now(UTC) + timedelta(seconds=15)).timestamp()) < 5


def test_every_line_of_a_chatty_command_arrives_in_order() -> None:
    """The output goes through the tether, which must never drop or reorder what the worker can read."""
    log = ListLog()
    result = run(["seq", "1", "300000"], StepContext(log=log))  # about 2 MB
    assert result.ok
    assert log.lines == [str(i) for i in range(1, 300001)]
