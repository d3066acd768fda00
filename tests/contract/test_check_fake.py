"""The ``fake`` check: the contract, and its scripted phases."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.fake import FakeCheck, FakeOptions
from conveyor.steps import StepContext
from tests.contract.check_contract import CheckContract, make_request


def request_for(tmp_path: Path, **kw: Any) -> CheckRequest:
    options = {k: kw.pop(k) for k in ("phases", "duration", "fail_versions") if k in kw}
    return make_request(FakeOptions(**options), tmp_path, **kw)


class TestFakeCheckContract(CheckContract):
    __test__ = True

    @pytest.fixture
    def check(self) -> Check:
        return FakeCheck()

    @pytest.fixture
    def passing_request(self, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path)

    @pytest.fixture
    def failing_request(self, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, phases=["fail"], version="9.9.9")

    @pytest.fixture
    def broken_request(self, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, phases=["error"])

    @pytest.fixture
    def slow_request(self, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, duration=60)


def phases_of(check: FakeCheck, request: CheckRequest, n: int) -> list[str]:
    return [check.measure(request, StepContext()).phase for _ in range(n)]


def test_phases_play_in_order_then_the_last_repeats(tmp_path: Path) -> None:
    request = request_for(tmp_path, phases=["error", "inconclusive", "pass"])
    assert phases_of(FakeCheck(), request, 5) == ["error", "inconclusive", "pass", "pass", "pass"]


def test_counter_is_per_app_environment_and_version(tmp_path: Path) -> None:
    check = FakeCheck()
    script = {"phases": ["fail", "pass"]}
    assert phases_of(check, request_for(tmp_path, **script), 2) == ["fail", "pass"]
    assert phases_of(check, request_for(tmp_path, version="1.2.4", **script), 1) == ["fail"]
    assert phases_of(check, request_for(tmp_path, environment="production", **script), 1) == ["fail"]
    assert phases_of(check, request_for(tmp_path, app="cart", **script), 1) == ["fail"]
    assert phases_of(FakeCheck(), request_for(tmp_path, **script), 1) == ["fail"]


def test_counter_is_thread_safe(tmp_path: Path) -> None:
    check = FakeCheck()
    request = request_for(tmp_path)
    results: list[str] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(50):
            message = check.measure(request, StepContext()).message
            with lock:
                results.append(message)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 400  # every measurement got its own number


def test_fail_versions_match_version_or_sha_prefix(tmp_path: Path) -> None:
    check = FakeCheck()
    assert check.measure(request_for(tmp_path, fail_versions=["1.2"]), StepContext()).phase == "fail"
    assert check.measure(request_for(tmp_path, fail_versions=["0123abc", "0123"]), StepContext()).phase == "fail"
    assert check.measure(request_for(tmp_path, fail_versions=["2.0"]), StepContext()).phase == "pass"


@pytest.mark.parametrize("options", [{"phases": []}, {"phases": ["maybe"]}, {"duration": -1}, {"fail_version": ["1"]}])
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FakeOptions.model_validate(options)
