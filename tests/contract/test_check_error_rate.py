"""The ``error_rate`` check: the contract, its windows, and counts read from a Sentry stand-in on 127.0.0.1
answering the documented events API (tests/sentry_standin.py). Reading conveyor's own error store is
tested at the end, once that store exists in the tree (it skips until then)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.error_counts import ErrorCountsUnavailable, SentryErrorCounts
from conveyor.checks.error_rate import ErrorRateCheck, ErrorRateOptions, SentryOptions, windows_for
from conveyor.steps import ListLog, StepContext
from tests.contract.check_contract import CheckContract, make_request
from tests.sentry_standin import ErrorEvent, SentryStandIn

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
DEPLOY_STARTED = NOW - timedelta(minutes=11)
DEPLOYED = NOW - timedelta(minutes=10)
PREVIOUS_DEPLOYED = NOW - timedelta(hours=3)


def errors(
    n: int, project: str, release: str, start: datetime, span: timedelta, env: str = "staging"
) -> list[ErrorEvent]:
    return [ErrorEvent(start + span * (i + 0.5) / n, project, env, release) for i in range(n)]


@pytest.fixture
def standin() -> Iterator[SentryStandIn]:
    s = SentryStandIn()
    before = DEPLOY_STARTED - timedelta(hours=1)
    after = NOW - timedelta(minutes=5)
    # shop: 12 errors an hour before, 1 in the last five minutes (fine); a transaction is never counted
    s.events += errors(12, "shop", "1.2.2", before, timedelta(hours=1))
    s.events += errors(1, "shop", "1.2.3", after, timedelta(minutes=5))
    s.events.append(ErrorEvent(NOW - timedelta(minutes=1), "shop", "1.2.3", "1.2.3", type="transaction"))
    # broken-shop: the same baseline, 30 errors in the last five minutes
    s.events += errors(12, "broken-shop", "1.2.2", before, timedelta(hours=1))
    s.events += errors(30, "broken-shop", "1.2.3", after, timedelta(minutes=5))
    s.start()
    yield s
    s.close()


def request(tmp_path: Path, sentry: dict[str, Any] | None, **overrides: Any) -> CheckRequest:
    options: dict[str, Any] = {"source": "sentry", "sentry": sentry} if sentry is not None else {}
    options.update(overrides.pop("options", {}))
    fields: dict[str, Any] = {
        "deploy_started_at": DEPLOY_STARTED,
        "deployed_at": DEPLOYED,
        "previous_version": "1.2.2",
        "previous_deployed_at": PREVIOUS_DEPLOYED,
    }
    fields.update(overrides)
    return make_request(ErrorRateOptions.model_validate(options), tmp_path, **fields)


def sentry_opts(standin: SentryStandIn, **extra: Any) -> dict[str, Any]:
    return {"url": standin.url, "org": standin.org, "token": standin.token, **extra}


@pytest.fixture
def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


class TestErrorRateContract(CheckContract):
    __test__ = True
    cancel_gives_error = False  # one HTTP request can't be interrupted; it is bounded by its timeout

    @pytest.fixture
    def check(self) -> Check:
        return ErrorRateCheck(clock=lambda: NOW)

    @pytest.fixture
    def passing_request(self, standin: SentryStandIn, tmp_path: Path) -> CheckRequest:
        return request(tmp_path, sentry_opts(standin))

    @pytest.fixture
    def failing_request(self, standin: SentryStandIn, tmp_path: Path) -> CheckRequest:
        return request(tmp_path, sentry_opts(standin, project="broken-shop"))

    @pytest.fixture
    def broken_request(self, refused_url: str, tmp_path: Path) -> CheckRequest:
        return request(tmp_path, {"url": refused_url, "org": "acme", "token": "x"})

    @pytest.fixture
    def slow_request(self, standin: SentryStandIn, tmp_path: Path) -> CheckRequest:
        standin.mode, standin.hold_seconds = "slow", 1.0
        return request(tmp_path, sentry_opts(standin, timeout=3))


def measure(req: CheckRequest, now: datetime = NOW, log: ListLog | None = None) -> Any:
    return ErrorRateCheck(clock=lambda: now).measure(req, StepContext(log=log or ListLog()))


def test_a_spike_fails_with_the_counts_windows_ratio_and_p_value(standin: SentryStandIn, tmp_path: Path) -> None:
    log = ListLog()
    m = measure(request(tmp_path, sentry_opts(standin, project="broken-shop")), log=log)
    assert m.phase == "fail"
    assert "30 errors in 5m after the deploy, 12 in 1h before, ratio 30.00" in m.message
    assert "p = " in m.message and "2× baseline" in m.message
    value = json.loads(m.value)
    assert (value["after"], value["before"], value["after_seconds"], value["before_seconds"]) == (30, 12, 300, 3600)
    assert value["after_window"] == [(NOW - timedelta(minutes=5)).isoformat(), NOW.isoformat()]
    assert value["before_window"] == [(DEPLOY_STARTED - timedelta(hours=1)).isoformat(), DEPLOY_STARTED.isoformat()]
    assert value["p_value"] < 0.01 and value["ratio"] == 30.0
    assert any("error_rate windows: after" in line for line in log.lines)


def test_queries_have_the_documented_shape(standin: SentryStandIn, tmp_path: Path) -> None:
    measure(request(tmp_path, sentry_opts(standin), options={"release_prefix": "shop@"}))
    after, before = standin.queries
    assert after.raw["field"] == ["count()"] and after.raw["per_page"] == ["1"]
    assert after.raw["query"] == ["event.type:error project:shop release:shop@1.2.3"]
    assert (after.environment, after.start, after.end) == ("staging", NOW - timedelta(minutes=5), NOW)
    assert after.raw["start"] == [(NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")]
    assert before.release == "shop@1.2.2"
    assert (before.start, before.end) == (DEPLOY_STARTED - timedelta(hours=1), DEPLOY_STARTED)
    method, path, headers, _ = standin.requests[0]
    assert (method, path) == ("GET", "/api/0/organizations/acme/events/")
    assert headers["Authorization"] == f"Bearer {standin.token}"


def test_a_numeric_project_is_a_parameter_and_odd_releases_are_quoted(standin: SentryStandIn) -> None:
    source = SentryErrorCounts(url=standin.url, org="acme", project="4501", token=standin.token)
    try:
        params = source.params("prod", NOW - timedelta(minutes=5), NOW, 'web "2" (final)')
    finally:
        source.close()
    assert params.get_list("project") == ["4501"]
    assert params["query"] == 'event.type:error release:"web \\"2\\" (final)"'


def test_the_baseline_never_reaches_back_past_the_previous_deploy(standin: SentryStandIn, tmp_path: Path) -> None:
    recent = DEPLOY_STARTED - timedelta(minutes=20)
    m = measure(request(tmp_path, sentry_opts(standin), previous_deployed_at=recent))
    value = json.loads(m.value)
    assert value["before_seconds"] == 20 * 60
    assert standin.queries[1].start == recent


def test_before_the_window_is_full_a_fine_release_is_inconclusive_but_a_spike_fails(
    standin: SentryStandIn, tmp_path: Path
) -> None:
    early = DEPLOYED + timedelta(minutes=3)  # 3 of the 5 minutes seen
    standin.count_errors = lambda q: {"1.2.2": 60, "1.2.3": 1}[q.release or ""] if q.project == "shop" else 0
    m = measure(request(tmp_path, sentry_opts(standin)), now=early)
    assert m.phase == "inconclusive"
    assert "after window not full yet (180s of 300s)" in m.message
    standin.count_errors = lambda q: {"1.2.2": 60, "1.2.3": 40}[q.release or ""]
    assert measure(request(tmp_path, sentry_opts(standin)), now=early).phase == "fail"


def test_a_quiet_app_is_inconclusive_unless_on_too_few_pass(standin: SentryStandIn, tmp_path: Path) -> None:
    standin.count_errors = lambda q: 0
    m = measure(request(tmp_path, sentry_opts(standin)))
    assert m.phase == "inconclusive"
    assert "too few errors to tell (0 < min_events 10)" in m.message
    m = measure(request(tmp_path, sentry_opts(standin), options={"on_too_few": "pass"}))
    assert m.phase == "pass" and "on_too_few: pass" in m.message
    # but never on part of the window
    early = DEPLOYED + timedelta(seconds=30)
    m = measure(request(tmp_path, sentry_opts(standin), options={"on_too_few": "pass"}), now=early)
    assert m.phase == "inconclusive"
    assert m.message.startswith("after window not full yet (30s of 300s): too few errors to tell")


@pytest.mark.parametrize("on_too_few", ["inconclusive", "pass"])
def test_measured_as_the_window_fills_the_check_waits_for_the_rounded_seconds(
    standin: SentryStandIn, tmp_path: Path, on_too_few: str
) -> None:
    """``initial_delay`` equal to ``window``: the deploy ended mid-second and the measurement comes at once
    after ``window``; the windows' whole-second bounds left it short by up to two seconds."""
    deployed = DEPLOYED + timedelta(microseconds=700_000)
    start, began = deployed + timedelta(seconds=300.05), time.monotonic()
    standin.count_errors = lambda q: {"1.2.2": 60, "1.2.3": 5}[q.release or ""]
    req = request(tmp_path, sentry_opts(standin), deployed_at=deployed, options={"on_too_few": on_too_few})
    clock = lambda: start + timedelta(seconds=time.monotonic() - began)  # noqa: E731
    m = ErrorRateCheck(clock=clock).measure(req, StepContext(log=ListLog()))
    assert m.phase == "pass", m.message
    assert json.loads(m.value)["after_seconds"] == 300
    assert 0.2 < time.monotonic() - began < 2  # to the whole second after the deploy, plus the window
    standin.count_errors = lambda q: 0  # too few: on_too_few decides, on the full window
    m = ErrorRateCheck(clock=lambda: deployed + timedelta(seconds=301.3)).measure(req, StepContext(log=ListLog()))
    assert (m.phase, "not full" in m.message) == (on_too_few, False)


def test_a_first_deploy_has_nothing_to_compare_with(standin: SentryStandIn, tmp_path: Path) -> None:
    req = request(tmp_path, sentry_opts(standin), previous_version=None, previous_deployed_at=None)
    m = measure(req)
    assert m.phase == "inconclusive" and "no previous release ran in staging" in m.message
    assert not standin.queries
    opts = {"on_too_few": "pass"}
    req = request(tmp_path, sentry_opts(standin), previous_version=None, previous_deployed_at=None, options=opts)
    assert measure(req).phase == "pass"


def test_by_release_false_counts_every_release(standin: SentryStandIn, tmp_path: Path) -> None:
    req = request(tmp_path, sentry_opts(standin), previous_version=None, options={"by_release": False})
    m = measure(req)
    assert m.phase == "pass", m.message
    assert all(q.release is None for q in standin.queries)
    assert "release:" not in standin.queries[0].raw["query"][0]


def test_an_unknown_deploy_time_is_an_error(standin: SentryStandIn, tmp_path: Path) -> None:
    m = measure(request(tmp_path, sentry_opts(standin), deployed_at=None))
    assert m.phase == "error" and "deploy's finish time is unknown" in m.message


def test_a_refused_token_is_an_error_that_does_not_show_it(standin: SentryStandIn, tmp_path: Path) -> None:
    m = measure(request(tmp_path, sentry_opts(standin, token="wrong-secret-token")))
    assert m.phase == "error"
    assert "HTTP 401" in m.message and "wrong-secret-token" not in m.message


def test_an_answer_without_a_count_is_an_error(standin: SentryStandIn, tmp_path: Path) -> None:
    standin.count_errors = lambda q: "many"  # type: ignore[assignment,return-value]
    m = measure(request(tmp_path, sentry_opts(standin)))
    assert m.phase == "error" and "not a count" in m.message


def test_windows_for_is_clipped_and_rounded() -> None:
    opts = ErrorRateOptions()
    req = make_request(opts, Path("/tmp"), deployed_at=DEPLOYED, deploy_started_at=DEPLOY_STARTED)
    w = windows_for(req, opts, NOW + timedelta(microseconds=700))
    assert not isinstance(w, str)
    assert (w.after_end, w.after_start, w.filled) == (NOW, NOW - timedelta(minutes=5), True)
    assert w.before_seconds == 3600
    w = windows_for(req, opts, DEPLOYED + timedelta(minutes=2))
    assert not isinstance(w, str)
    assert (w.after_start, w.after_seconds, w.filled) == (DEPLOYED, 120, False)


@pytest.mark.parametrize(
    "options",
    [
        {"source": "sentry"},
        {"sentry": {"org": "acme", "token": "t"}},
        {"source": "sentry", "sentry": {"org": "acme"}},
        {"source": "sentry", "sentry": {"org": "acme", "token": "t", "url": "ftp://sentry"}},
        {"source": "sentry", "sentry": {"org": "acme", "token": "t", "nope": 1}},
        {"max_ratio": 0},
        {"alpha": 1},
        {"min_events": -1},
        {"window": 0},
        {"on_too_few": "fail"},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ErrorRateOptions.model_validate(options)


def test_defaults_and_durations() -> None:
    opts = ErrorRateOptions.model_validate({"window": "10m", "baseline": "2h"})
    assert (opts.window, opts.baseline, opts.max_ratio, opts.min_events, opts.alpha) == (600, 7200, 2.0, 10, 0.01)
    assert (opts.source, opts.on_too_few, opts.by_release, opts.release_prefix) == (
        "conveyor",
        "inconclusive",
        True,
        "",
    )
    sentry = ErrorRateOptions.model_validate({"source": "sentry", "sentry": {"org": "acme", "token": "t"}}).sentry
    assert sentry is not None and (sentry.url, sentry.project, sentry.query) == (
        "https://sentry.io",
        None,
        "event.type:error",
    )


def test_the_conveyor_source_reads_an_empty_error_store(db_url: str, tmp_path: Path) -> None:
    m = measure(request(tmp_path, None, database_url=db_url))
    assert m.phase == "inconclusive", m.message
    assert "too few errors to tell (0 < min_events 10)" in m.message


def test_an_invalid_query_is_unavailable_with_sentrys_answer(standin: SentryStandIn) -> None:
    source = SentryErrorCounts(url=standin.url, org="acme", project="shop", token=standin.token, query="oops")
    try:
        with pytest.raises(ErrorCountsUnavailable, match=r"HTTP 400 to the events query: .*free text"):
            source.count("shop", "staging", NOW - timedelta(minutes=5), NOW, None)
    finally:
        source.close()


DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(
    "option", [*ErrorRateOptions.model_fields, *SentryOptions.model_fields, "initial_delay", "inconclusive_limit"]
)
def test_every_option_is_documented(option: str) -> None:
    section = (DOCS / "checks.md").read_text(encoding="utf-8").split("### `error_rate`")[1].split("\n### ")[0]
    assert f"| `{option}` |" in section or f"{option}:" in section, option
