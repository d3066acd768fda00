"""The ``command`` driver: the contract, and what reaches the command."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.drivers.base import DeployRequest, Driver
from conveyor.drivers.command import CommandDriver, CommandOptions
from tests.contract.driver_contract import DriverContract, make_request, new_context

PY = sys.executable


def request_for(tmp_path: Path, argv: list[str], **kw: Any) -> DeployRequest:
    options = {k: kw.pop(k) for k in ("timeout", "cwd", "env") if k in kw}
    return make_request(CommandOptions(argv=argv, **options), tmp_path, **kw)


def python(code: str) -> list[str]:
    return [PY, "-c", code]


class TestCommandDriverContract(DriverContract):
    __test__ = True
    log_marker = "deploy started"

    @pytest.fixture
    def driver(self) -> Driver:
        return CommandDriver()

    @pytest.fixture
    def succeeding_request(self, tmp_path: Path) -> DeployRequest:
        return request_for(tmp_path, python("print('deployed')"))

    @pytest.fixture
    def failing_request(self, tmp_path: Path) -> DeployRequest:
        return request_for(tmp_path, python("raise SystemExit(3)"))

    @pytest.fixture
    def long_request(self, tmp_path: Path) -> DeployRequest:
        return request_for(tmp_path, ["sleep", "60"])

    @pytest.fixture
    def timing_out_request(self, tmp_path: Path) -> DeployRequest:
        code = "import time; print('deploy started', flush=True); time.sleep(60)"
        return request_for(tmp_path, python(code), timeout=0.5)


def test_output_streams_into_the_log_in_order(tmp_path: Path) -> None:
    code = "import sys; print('one', flush=True); print('two', file=sys.stderr, flush=True); print('three')"
    ctx, log = new_context()
    result = CommandDriver().deploy(request_for(tmp_path, python(code)), ctx)
    assert result.ok
    assert log.lines[-3:] == ["one", "two", "three"]


def test_lines_reach_the_log_while_the_command_runs(tmp_path: Path) -> None:
    code = "import time; print('early', flush=True); time.sleep(1.5)"
    seen: list[float] = []
    started = time.monotonic()
    ctx, _ = new_context()
    ctx.log = lambda line: seen.append(time.monotonic() - started) if line == "early" else None
    assert CommandDriver().deploy(request_for(tmp_path, python(code)), ctx).ok
    assert seen and seen[0] < 1.0


def test_non_zero_exit_reports_the_code(tmp_path: Path) -> None:
    result = CommandDriver().deploy(request_for(tmp_path, python("raise SystemExit(7)")), new_context()[0])
    assert not result.ok
    assert result.message == "command exited with code 7"
    assert result.details["exit_code"] == 7


def test_timeout_message_names_the_limit(tmp_path: Path) -> None:
    request = request_for(tmp_path, ["sleep", "30"], timeout=0.3)
    started = time.monotonic()
    result = CommandDriver().deploy(request, new_context()[0])
    assert result.message == "timed out after 0.3s"
    assert time.monotonic() - started < 5


def test_timeout_ends_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "survivor"
    child = f"import time; time.sleep(1.5); open({str(marker)!r}, 'w')"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(30)"
    result = CommandDriver().deploy(request_for(tmp_path, python(code), timeout=0.5), new_context()[0])
    assert not result.ok
    time.sleep(2)
    assert not marker.exists()


def test_missing_executable_is_a_clear_failure(tmp_path: Path) -> None:
    request = request_for(tmp_path, ["conveyor-no-such-program-xyz", "--flag"])
    result = CommandDriver().deploy(request, new_context()[0])
    assert not result.ok
    assert result.message == "executable not found: conveyor-no-such-program-xyz"


def test_missing_working_directory_is_a_clear_failure(tmp_path: Path) -> None:
    request = request_for(tmp_path, ["true"], cwd=str(tmp_path / "nowhere"))
    result = CommandDriver().deploy(request, new_context()[0])
    assert not result.ok
    assert "working directory not found" in result.message


def test_release_facts_and_env_reach_the_command_as_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_TEST_SECRET", "must-not-leak")
    out = tmp_path / "env.txt"
    code = f"import os, json; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    expires = datetime(2026, 1, 31, 12, 0, 5, 250000, tzinfo=UTC)
    request = request_for(
        tmp_path, python(code), env={"EXTRA": "yes"}, cwd=str(tmp_path), attempt=2, lease_expires_at=expires
    )
    assert CommandDriver().deploy(request, new_context()[0]).ok
    env = json.loads(out.read_text())
    assert env["CONVEYOR_APP"] == "shop"
    assert env["CONVEYOR_ENV"] == "staging"
    assert env["CONVEYOR_VERSION"] == "1.2.3"
    assert env["CONVEYOR_SHA"] == request.sha
    assert env["CONVEYOR_REPO"] == request.repo
    assert env["CONVEYOR_ATTEMPT"] == "2"
    assert env["CONVEYOR_LEASE_EXPIRES_AT"] == "2026-01-31T12:00:05.250Z"
    assert env["REGION"] == env["CONVEYOR_VAR_REGION"] == "eu-west"
    assert env["EXTRA"] == "yes"
    assert "PATH" in env
    assert "CONVEYOR_TEST_SECRET" not in env


@pytest.mark.parametrize("fields", [{"argv": []}, {"argv": ["x"], "timeout": 0}, {"argv": ["x"], "shell": True}])
def test_options_are_validated(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CommandOptions.model_validate(fields)


def test_a_string_command_is_refused() -> None:
    with pytest.raises(ValidationError):
        CommandOptions.model_validate({"argv": "deploy.sh --prod"})
