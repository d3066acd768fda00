"""The ``fake`` driver: the contract, its failure rules and its record file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.drivers.base import DeployRequest, Driver
from conveyor.drivers.fake import FakeDriver, FakeOptions
from tests.contract.driver_contract import DriverContract, make_request, new_context


def request_for(tmp_path: Path, **kw: Any) -> DeployRequest:
    options = {k: kw.pop(k) for k in ("duration", "outcome", "fail_versions", "record", "blocking") if k in kw}
    return make_request(FakeOptions(**options), tmp_path, **kw)


class TestFakeDriverContract(DriverContract):
    __test__ = True

    @pytest.fixture
    def driver(self) -> Driver:
        return FakeDriver()

    @pytest.fixture
    def succeeding_request(self, tmp_path: Path) -> DeployRequest:
        return request_for(tmp_path)

    @pytest.fixture
    def failing_request(self, tmp_path: Path) -> DeployRequest:
        return request_for(tmp_path, outcome="fail")

    @pytest.fixture
    def long_request(self, tmp_path: Path) -> DeployRequest:
        return request_for(tmp_path, duration=60)


class TestFakeBlockingDriverContract(TestFakeDriverContract):
    """``blocking: true``: the same driver on a thread of its own (``deploy``)."""

    @pytest.fixture
    def succeeding_request(self, tmp_path: Path) -> DeployRequest:
        return request_for(tmp_path, blocking=True)

    @pytest.fixture
    def failing_request(self, tmp_path: Path) -> DeployRequest:
        return request_for(tmp_path, outcome="fail", blocking=True)

    @pytest.fixture
    def long_request(self, tmp_path: Path) -> DeployRequest:
        return request_for(tmp_path, duration=60, blocking=True)


@pytest.mark.parametrize(
    ("fail_versions", "version", "sha", "ok"),
    [
        ([], "2.0.0", "abc123", True),
        (["2."], "2.0.0", "abc123", False),
        (["abc"], "2.0.0", "abc123", False),
        (["3."], "2.0.0", "abc123", True),
    ],
)
def test_fail_versions_match_version_or_sha_prefix(
    tmp_path: Path, fail_versions: list[str], version: str, sha: str, ok: bool
) -> None:
    request = request_for(tmp_path, fail_versions=fail_versions, version=version, sha=sha)
    assert FakeDriver().deploy(request, new_context()[0]).ok is ok


def test_record_appends_one_line_per_deploy(tmp_path: Path) -> None:
    record = tmp_path / "deploys.jsonl"
    driver = FakeDriver()
    for attempt, outcome in [(1, "fail"), (2, "succeed")]:
        request = request_for(tmp_path, record=str(record), duration=0.05, outcome=outcome, attempt=attempt)
        driver.deploy(request, new_context()[0])
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(r["attempt"], r["outcome"]) for r in rows] == [(1, "failed"), (2, "succeeded")]
    for row in rows:
        assert {"app", "environment", "version", "attempt", "start", "end", "pid"} <= row.keys()
        assert row["end"] - row["start"] >= 0.05
    assert rows[0]["end"] <= rows[1]["start"]


def test_duration_must_not_be_negative() -> None:
    with pytest.raises(ValidationError):
        FakeOptions(duration=-1)
