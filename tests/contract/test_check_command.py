"""The ``command`` check running real processes (argv lists, no shell)."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.command import CommandCheck, CommandOptions
from conveyor.domain.model import Measurement
from conveyor.steps import ListLog, StepContext
from tests.contract.check_contract import CheckContract, make_request

PY = sys.executable


def request_for(
    tmp_path: Path, argv: list[str], attempt: int = 1, lease_expires_at: datetime | None = None, **options: Any
) -> CheckRequest:
    return make_request(
        CommandOptions(argv=argv, **options), tmp_path, attempt=attempt, lease_expires_at=lease_expires_at
    )


def python(code: str) -> list[str]:
    return [PY, "-c", code]


class TestCommandCheckContract(CheckContract):
    __test__ = True

    @pytest.fixture
    def check(self) -> Check:
        return CommandCheck()

    @pytest.fixture
    def passing_request(self, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, python("print('healthy')"))

    @pytest.fixture
    def failing_request(self, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, python("import sys; print('unhealthy'); sys.exit(3)"))

    @pytest.fixture
    def broken_request(self, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, [str(tmp_path / "no-such-program")])

    @pytest.fixture
    def slow_request(self, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, python("import time; time.sleep(60)"))


def measure(request: CheckRequest, log: ListLog | None = None) -> Measurement:
    return CommandCheck().measure(request, StepContext(log=log or ListLog()))


def test_exit_status_and_last_output_line_in_the_message(tmp_path: Path) -> None:
    m = measure(request_for(tmp_path, python("import sys; print('db unreachable'); sys.exit(3)")))
    assert (m.phase, m.message, m.value) == ("fail", "exit 3: db unreachable", "3")


def test_output_lines_go_to_the_log(tmp_path: Path) -> None:
    log = ListLog()
    code = "import sys\nprint('one', flush=True)\nprint('two', file=sys.stderr, flush=True)\nprint('three', end='')\n"
    assert measure(request_for(tmp_path, python(code)), log).phase == "pass"
    assert log.lines == ["one", "two", "three"]


def test_environment_is_minimal_plus_release_facts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_DATABASE_PASSWORD", "hunter2")
    out = tmp_path / "env.json"
    code = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    expires = datetime(2026, 1, 31, 12, 0, 5, tzinfo=UTC)
    request = request_for(
        tmp_path, python(code), env={"EXTRA": "yes", "REGION": "overridden"}, attempt=3, lease_expires_at=expires
    )
    assert measure(request).phase == "pass"
    env = json.loads(out.read_text())
    assert env["CONVEYOR_REPO"] == str(tmp_path / "mirror.git")  # as drivers get it
    assert env["CONVEYOR_ATTEMPT"] == "3"
    assert env["CONVEYOR_LEASE_EXPIRES_AT"] == "2026-01-31T12:00:05.000Z"
    assert env["CONVEYOR_APP"] == "shop"
    assert env["CONVEYOR_ENV"] == "staging"
    assert env["CONVEYOR_VERSION"] == "1.2.3"
    assert env["CONVEYOR_SHA"] == "0123456789abcdef0123456789abcdef01234567"
    assert env["CONVEYOR_VAR_REGION"] == "eu-west"
    assert env["REGION"] == "overridden"  # options.env wins over vars
    assert env["EXTRA"] == "yes"
    assert env["PATH"] == os.environ["PATH"]
    assert "CONVEYOR_DATABASE_PASSWORD" not in env


def test_arguments_never_reach_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f"$(touch {marker}); `touch {marker}` ; touch {marker} && echo 'x'"
    log = ListLog()
    m = measure(request_for(tmp_path, [PY, "-c", "import sys; print(sys.argv[1])", hostile]), log)
    assert m.phase == "pass"
    assert log.lines == [hostile]
    assert not marker.exists()


def test_cwd(tmp_path: Path) -> None:
    log = ListLog()
    measure(request_for(tmp_path, python("import os; print(os.getcwd())"), cwd=str(tmp_path)), log)
    assert log.lines == [str(tmp_path)]


def test_missing_cwd_is_an_error_naming_the_folder(tmp_path: Path) -> None:
    m = measure(request_for(tmp_path, python("pass"), cwd=str(tmp_path / "nope")))
    assert m.phase == "error"
    assert str(tmp_path / "nope") in m.message


def test_missing_program_is_an_error_naming_it(tmp_path: Path) -> None:
    m = measure(request_for(tmp_path, ["no-such-program-anywhere", "--version"]))
    assert m.phase == "error"
    assert m.message.startswith("cannot run 'no-such-program-anywhere'")


def test_timeout_is_an_error(tmp_path: Path) -> None:
    started = time.monotonic()
    m = measure(request_for(tmp_path, python("import time; time.sleep(60)"), timeout=0.3))
    assert m.phase == "error"
    assert "timed out after 0.3s" in m.message
    assert time.monotonic() - started < 5


def test_killed_by_a_signal_fails(tmp_path: Path) -> None:
    m = measure(request_for(tmp_path, python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")))
    assert (m.phase, m.message) == ("fail", "killed by SIGKILL")


def pid_alive(pid: int) -> bool:
    """True while the process runs; a zombie awaiting its reaper counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    ctx = StepContext()
    result: list[Measurement] = []
    worker = threading.Thread(
        target=lambda: result.append(CommandCheck().measure(request_for(tmp_path, python(code)), ctx))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    child = int(pid_file.read_text())
    ctx.cancelled.set()
    worker.join(5)
    assert not worker.is_alive()
    assert result[0].phase == "error" and "cancelled" in result[0].message
    deadline = time.monotonic() + 3
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)  # the grandchild is reparented to init, which reaps it
    assert not pid_alive(child)


def test_a_process_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
    started = time.monotonic()
    m = measure(request_for(tmp_path, python(code), timeout=0.5))
    assert m.phase == "error"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("options", [{"argv": []}, {}, {"argv": ["x"], "shell": True}, {"argv": ["x"], "timeout": -1}])
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CommandOptions.model_validate(options)
