"""run_check: the measuring loop around a check, driven with the fake check."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conveyor.checks.base import Check, CheckRequest, NoOptions
from conveyor.checks.fake import FakeCheck, FakeOptions
from conveyor.checks.runner import run_check
from conveyor.domain.model import CheckLimits, Measurement
from conveyor.steps import ListLog, StepContext


def fake_request(tmp_path: Path, **options: Any) -> CheckRequest:
    return CheckRequest("shop", "staging", "1.2.3", "abc1234", {}, FakeOptions(**options), tmp_path)


class TickingClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def test_takes_count_measurements_and_succeeds(tmp_path: Path) -> None:
    log = ListLog()
    measurements, outcome = run_check(FakeCheck(), fake_request(tmp_path), CheckLimits(count=3), StepContext(log=log))
    assert [m.phase for m in measurements] == ["pass"] * 3
    assert outcome.phase == "successful"
    assert outcome.counts["pass"] == 3
    assert len([line for line in log.lines if line.startswith("check fake #")]) == 3


def test_stops_early_on_failure(tmp_path: Path) -> None:
    measurements, outcome = run_check(
        FakeCheck(),
        fake_request(tmp_path, phases=["pass", "fail", "pass"]),
        CheckLimits(count=10),
        StepContext(),
    )
    assert [m.phase for m in measurements] == ["pass", "fail"]
    assert outcome.phase == "failed"


def test_tolerated_errors_then_success(tmp_path: Path) -> None:
    limits = CheckLimits(count=3, consecutive_error_limit=2)
    measurements, outcome = run_check(
        FakeCheck(), fake_request(tmp_path, phases=["error", "error", "pass"]), limits, StepContext()
    )
    assert len(measurements) == 3
    assert outcome.ok


def test_each_measurement_is_stamped_by_the_clock(tmp_path: Path) -> None:
    clock = TickingClock()
    measurements, _ = run_check(FakeCheck(), fake_request(tmp_path), CheckLimits(count=2), StepContext(), clock)
    assert [m.at for m in measurements] == [
        datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(2030, 1, 1, 0, 0, 2, tzinfo=UTC),
    ]


def test_default_clock_is_utc(tmp_path: Path) -> None:
    (m,), _ = run_check(FakeCheck(), fake_request(tmp_path), CheckLimits(), StepContext())
    assert m.at is not None and m.at.utcoffset() == timedelta(0)


def test_interval_and_initial_delay_are_honoured(tmp_path: Path) -> None:
    started = time.monotonic()
    measurements, outcome = run_check(
        FakeCheck(),
        fake_request(tmp_path),
        CheckLimits(count=3, interval=0.2, initial_delay=0.1),
        StepContext(),
    )
    elapsed = time.monotonic() - started
    assert outcome.ok and len(measurements) == 3
    assert 0.5 <= elapsed < 2.0  # 0.1 + 2 intervals of 0.2; no interval after the last one


class Exploding(Check):
    name = "exploding"
    Options = NoOptions

    def measure(self, request: CheckRequest, ctx: StepContext) -> Measurement:
        raise RuntimeError("probe crashed")


def test_an_exception_becomes_an_error_measurement(tmp_path: Path) -> None:
    request = CheckRequest("shop", "staging", "1", "abc", {}, NoOptions(), tmp_path)
    log = ListLog()
    measurements, outcome = run_check(
        Exploding(), request, CheckLimits(count=5, consecutive_error_limit=1), StepContext(log=log)
    )
    assert [m.phase for m in measurements] == ["error", "error"]
    assert "RuntimeError: probe crashed" in measurements[0].message
    assert outcome.phase == "error"
    assert "probe crashed" in outcome.reason
    assert "probe crashed" in log.text


def test_cancel_during_the_interval(tmp_path: Path) -> None:
    ctx = StepContext()
    threading.Timer(0.2, ctx.cancelled.set).start()
    started = time.monotonic()
    measurements, outcome = run_check(FakeCheck(), fake_request(tmp_path), CheckLimits(count=5, interval=30), ctx)
    assert time.monotonic() - started < 5
    assert len(measurements) == 1
    assert (outcome.phase, outcome.reason) == ("error", "cancelled")
    assert outcome.counts["pass"] == 1


def test_cancel_during_the_initial_delay(tmp_path: Path) -> None:
    ctx = StepContext()
    ctx.cancelled.set()
    measurements, outcome = run_check(FakeCheck(), fake_request(tmp_path), CheckLimits(initial_delay=30), ctx)
    assert measurements == []
    assert (outcome.phase, outcome.reason) == ("error", "cancelled")


def test_cancel_during_a_measurement(tmp_path: Path) -> None:
    ctx = StepContext()
    threading.Timer(0.2, ctx.cancelled.set).start()
    measurements, outcome = run_check(FakeCheck(), fake_request(tmp_path, duration=30), CheckLimits(count=3), ctx)
    assert [m.phase for m in measurements] == ["error"]
    assert outcome.reason == "cancelled"
