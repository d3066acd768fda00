"""The ``alertmanager`` check against a real Alertmanager (Debian's 0.25), alerts posted to its API v2.

One Alertmanager serves the module; each test uses its own ``app`` label so their alerts never meet.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.checks.alertmanager import AlertmanagerCheck, AlertmanagerOptions
from conveyor.checks.base import Check, CheckRequest
from conveyor.steps import StepContext
from tests.contract.check_contract import CheckContract, make_request
from tests.monitoring import Program, post_alert, silence, start_alertmanager, wait_for


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Program]:
    with start_alertmanager(tmp_path_factory.mktemp("alertmanager")) as program:
        post_alert(program, {"alertname": "HighErrorRate", "app": "burning", "env": "staging", "severity": "page"})
        yield program


@pytest.fixture(scope="module")
def refused_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def silent_address() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


MATCHERS = ['app="{app}"', 'env="{env}"', 'severity=~"critical|page"']


def options_for(address: str, app: str, env: str = "staging", **extra: Any) -> AlertmanagerOptions:
    """As the config loader gives them: {app} and {env} filled."""
    matchers = [m.replace("{app}", app).replace("{env}", env) for m in MATCHERS]
    return AlertmanagerOptions(address=address, matchers=matchers, **extra)


def measure(options: AlertmanagerOptions, tmp_path: Path, **request: Any) -> Any:
    return AlertmanagerCheck().measure(make_request(options, tmp_path, **request), StepContext())


class TestAlertmanagerCheckContract(CheckContract):
    __test__ = True
    cancel_gives_error = False  # one request, bounded by its timeout

    @pytest.fixture
    def check(self) -> Check:
        return AlertmanagerCheck()

    @pytest.fixture
    def passing_request(self, alertmanager: Program, tmp_path: Path) -> CheckRequest:
        return make_request(options_for(alertmanager.url, "calm"), tmp_path)

    @pytest.fixture
    def failing_request(self, alertmanager: Program, tmp_path: Path) -> CheckRequest:
        wait_for(lambda: measure(options_for(alertmanager.url, "burning"), tmp_path).phase == "fail")
        return make_request(options_for(alertmanager.url, "burning"), tmp_path)

    @pytest.fixture
    def broken_request(self, refused_address: str, tmp_path: Path) -> CheckRequest:
        return make_request(options_for(refused_address, "calm"), tmp_path)

    @pytest.fixture
    def slow_request(self, silent_address: str, tmp_path: Path) -> CheckRequest:
        return make_request(options_for(silent_address, "calm", timeout=2), tmp_path)


def test_a_firing_alert_fails_with_its_name_and_summary(alertmanager: Program, tmp_path: Path) -> None:
    labels = {"alertname": "Http5xx", "app": "shop", "env": "staging", "severity": "critical"}
    post_alert(alertmanager, labels, "5xx above 5% for 2m")
    options = options_for(alertmanager.url, "shop")
    m = wait_for(lambda: (found := measure(options, tmp_path)).phase == "fail" and found)
    assert m.value == "1"
    assert "Http5xx (5xx above 5% for 2m)" in m.message
    assert 'app="shop"' in m.message


def test_other_apps_environments_and_severities_do_not_count(alertmanager: Program, tmp_path: Path) -> None:
    post_alert(alertmanager, {"alertname": "Slow", "app": "quiet", "env": "staging", "severity": "warning"})
    post_alert(alertmanager, {"alertname": "Down", "app": "quiet", "env": "production", "severity": "critical"})
    post_alert(alertmanager, {"alertname": "Down", "app": "quiet-other", "env": "staging", "severity": "critical"})
    wait_for(lambda: measure(options_for(alertmanager.url, "quiet", "production"), tmp_path).phase == "fail")
    m = measure(options_for(alertmanager.url, "quiet"), tmp_path)
    assert m.phase == "pass", m.message


def test_silenced_alerts_are_left_out(alertmanager: Program, tmp_path: Path) -> None:
    labels = {"alertname": "KnownNoise", "app": "hushed", "env": "staging", "severity": "page"}
    post_alert(alertmanager, labels, "flapping probe")
    options = options_for(alertmanager.url, "hushed")
    wait_for(lambda: measure(options, tmp_path).phase == "fail")
    silence(alertmanager, "alertname", "KnownNoise")
    m = wait_for(lambda: (found := measure(options, tmp_path)).phase == "pass" and found)
    assert m.value == "0"


def test_a_resolved_alert_no_longer_fails(alertmanager: Program, tmp_path: Path) -> None:
    labels = {"alertname": "Brief", "app": "healed", "env": "staging", "severity": "critical"}
    post_alert(alertmanager, labels)
    options = options_for(alertmanager.url, "healed")
    wait_for(lambda: measure(options, tmp_path).phase == "fail")
    post_alert(alertmanager, labels, resolved=True)
    wait_for(lambda: measure(options, tmp_path).phase == "pass")


def test_the_version_placeholder_is_filled_when_measuring(alertmanager: Program, tmp_path: Path) -> None:
    labels = {"alertname": "Canary", "app": "tagged", "env": "staging", "severity": "page", "version": "2.0.1"}
    post_alert(alertmanager, labels)
    options = AlertmanagerOptions(address=alertmanager.url, matchers=['app="tagged"', 'version="{version}"'])
    wait_for(lambda: measure(options, tmp_path, version="2.0.1").phase == "fail")
    assert measure(options, tmp_path, version="2.0.2").phase == "pass"
    unsafe = measure(options, tmp_path, version='2"} or {x="')
    assert unsafe.phase == "error"
    assert "not plain text" in unsafe.message


def test_unreachable_is_an_error(refused_address: str, tmp_path: Path) -> None:
    m = measure(options_for(refused_address, "shop"), tmp_path)
    assert m.phase == "error"
    assert refused_address in m.message


def test_an_answer_that_is_not_the_api_is_an_error(alertmanager: Program, tmp_path: Path) -> None:
    m = measure(options_for(alertmanager.url + "/nowhere", "shop"), tmp_path)
    assert m.phase == "error"
    assert "HTTP 404" in m.message


@pytest.mark.parametrize(
    "options",
    [
        {"address": "http://a", "matchers": []},
        {"address": "a:9093", "matchers": ['app="x"']},
        {"address": "http://a", "matchers": ["app"]},
        {"address": "http://a", "matchers": ['app=~"("']},
        {"address": "http://a", "matchers": ['app="x']},
        {"address": "http://a", "matchers": ['app="x"'], "timeout": 0},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AlertmanagerOptions.model_validate(options)
