"""The ``prometheus`` check against a real Prometheus (Debian's 2.42) scraping a test app on loopback.

The test app's counters grow at the rate and error ratio each test sets for its own app name, so tests
share one Prometheus (started once for the module) without seeing each other's series.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.prometheus import PrometheusCheck, PrometheusOptions
from conveyor.config import load_config
from conveyor.steps import StepContext
from tests.contract.check_contract import CheckContract, make_request
from tests.monitoring import Program, TrafficApp, query, start_prometheus, traffic_app, wait_for

# The error ratio of one release over the last 15 seconds (1s scrapes: enough samples for rate()), as a
# user writes it in conveyor.yaml: PromQL's own braces doubled, placeholders single.
RATIO = (
    'sum(rate(http_requests_total{{app="{app}",env="{env}",version="{version}",code=~"5.."}}[15s]))'
    ' / sum(rate(http_requests_total{{app="{app}",env="{env}",version="{version}"}}[15s]))'
)
CONFIG = """\
environments: [staging]
teams: {{t: {{notify: []}}}}
defaults: {{deploy: {{driver: fake}}}}
apps:
  {app}:
    repo: .
    team: t
    checks:
      - name: error-ratio
        type: prometheus
        address: {address}
        query: '{query}'
        success: result[0] < 0.01
"""


def loaded_options(tmp_path: Path, app: str, address: str) -> PrometheusOptions:
    """The check's options for ``app`` in staging as ``conveyor.yaml`` gives them (placeholders filled)."""
    path = tmp_path / "conveyor.yaml"
    path.write_text(CONFIG.format(app=app, address=address, query=RATIO))
    (spec,) = load_config(path, {}).apps[app].environments["staging"].checks
    assert isinstance(spec.options, PrometheusOptions)
    return spec.options


@pytest.fixture(scope="module")
def traffic() -> Iterator[TrafficApp]:
    with traffic_app() as app:
        yield app


@pytest.fixture(scope="module")
def prometheus(traffic: TrafficApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Program]:
    with start_prometheus(tmp_path_factory.mktemp("prometheus"), traffic.url) as program:
        wait_for(lambda: query(program, 'up{job="traffic"} == 1'), what="the first scrape", program=program)
        yield program


@pytest.fixture(scope="module")
def refused_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def silent_address() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def request_for(tmp_path: Path, app: str = "shop", version: str = "1.2.3", **options: Any) -> CheckRequest:
    return make_request(PrometheusOptions(**options), tmp_path, app=app, version=version)


def measure(tmp_path: Path, app: str = "shop", version: str = "1.2.3", **options: Any) -> Any:
    return PrometheusCheck().measure(request_for(tmp_path, app, version, **options), StepContext())


class TestPrometheusCheckContract(CheckContract):
    __test__ = True
    cancel_gives_error = False  # one query can't be interrupted; it is bounded by its timeout

    @pytest.fixture
    def check(self) -> Check:
        return PrometheusCheck()

    @pytest.fixture
    def passing_request(self, prometheus: Program, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, address=prometheus.url, query="vector(1)", success="result[0] == 1")

    @pytest.fixture
    def failing_request(self, prometheus: Program, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, address=prometheus.url, query="vector(0)", success="result[0] == 1")

    @pytest.fixture
    def broken_request(self, refused_address: str, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, address=refused_address, query="vector(1)", success="result[0] == 1")

    @pytest.fixture
    def slow_request(self, silent_address: str, tmp_path: Path) -> CheckRequest:
        return request_for(tmp_path, address=silent_address, query="up", success="True", timeout=2)


def settle(prometheus: Program, app: str, version: str) -> None:
    """Wait until Prometheus has enough samples of ``app`` ``version`` for a 15s rate."""
    promql = f'rate(http_requests_total{{app="{app}",version="{version}",code="200"}}[15s]) > 0'
    wait_for(lambda: query(prometheus, promql), timeout=30, what=f"samples of {app} {version}", program=prometheus)


def test_a_release_whose_error_ratio_rises_fails_and_a_flat_one_passes(
    prometheus: Program, traffic: TrafficApp, tmp_path: Path
) -> None:
    traffic.serve("rising", "staging", "1.0.0", rps=50, error_ratio=0.001)
    traffic.serve("rising", "staging", "2.0.0", rps=50, error_ratio=0.2)
    traffic.serve("flat", "staging", "2.0.0", rps=50, error_ratio=0.001)
    for app, version in (("rising", "1.0.0"), ("rising", "2.0.0"), ("flat", "2.0.0")):
        settle(prometheus, app, version)
    rising = loaded_options(tmp_path, "rising", prometheus.url)

    before = PrometheusCheck().measure(make_request(rising, tmp_path, app="rising", version="1.0.0"), StepContext())
    assert before.phase == "pass", before.message
    risen = PrometheusCheck().measure(make_request(rising, tmp_path, app="rising", version="2.0.0"), StepContext())
    assert risen.phase == "fail", risen.message
    # the query as sent: app and env filled by the loader, the version when measuring
    assert 'http_requests_total{app="rising",env="staging",version="2.0.0",code=~"5.."}' in risen.message
    assert "success condition `result[0] < 0.01` is false" in risen.message
    (ratio,) = json.loads(risen.value)
    assert 0.1 < ratio < 0.3
    flat = loaded_options(tmp_path, "flat", prometheus.url)
    passed = PrometheusCheck().measure(make_request(flat, tmp_path, app="flat", version="2.0.0"), StepContext())
    assert passed.phase == "pass", passed.message


def test_no_data_is_inconclusive_unless_configured(prometheus: Program, tmp_path: Path) -> None:
    ghost = loaded_options(tmp_path, "ghost", prometheus.url)
    m = PrometheusCheck().measure(make_request(ghost, tmp_path, app="ghost"), StepContext())
    assert m.phase == "inconclusive", m.message
    assert "returned no data" in m.message
    options = {"address": prometheus.url, "query": 'up{job="nothing"}', "success": "True"}
    assert measure(tmp_path, **options).phase == "inconclusive"
    assert measure(tmp_path, empty="pass", **options).phase == "pass"
    assert measure(tmp_path, empty="fail", **options).phase == "fail"


def test_success_and_failure_together(prometheus: Program, tmp_path: Path) -> None:
    both = {"address": prometheus.url, "success": "result[0] < 1", "failure": "result[0] > 5"}
    assert measure(tmp_path, query="vector(0)", **both).phase == "pass"
    assert measure(tmp_path, query="vector(9)", **both).phase == "fail"
    between = measure(tmp_path, query="vector(3)", **both)
    assert between.phase == "inconclusive", between.message
    only_failure = measure(tmp_path, address=prometheus.url, query="vector(3)", failure="result[0] > 5")
    assert only_failure.phase == "pass"


def test_a_vector_gives_every_value_and_its_labels(prometheus: Program, tmp_path: Path) -> None:
    m = measure(
        tmp_path,
        address=prometheus.url,
        query='label_replace(vector(2), "pod", "a", "", "") or label_replace(vector(1), "pod", "b", "", "")',
        success='len(result) == 2 and labels[0]["pod"] == "a" and all(v > 0 for v in result)',
    )
    assert m.phase == "pass", m.message
    assert m.value == "[2.0, 1.0]"


def test_a_scalar_is_a_list_of_one(prometheus: Program, tmp_path: Path) -> None:
    assert measure(tmp_path, address=prometheus.url, query="scalar(vector(4))", success="result == [4]").phase == "pass"


def test_bad_promql_is_an_error_with_prometheus_message(prometheus: Program, tmp_path: Path) -> None:
    m = measure(tmp_path, address=prometheus.url, query="sum(rate(x[5m]", success="True")
    assert m.phase == "error"
    assert "bad_data" in m.message and "parse error" in m.message, m.message


def test_a_range_vector_is_an_error(prometheus: Program, tmp_path: Path) -> None:
    m = measure(tmp_path, address=prometheus.url, query="up[10s]", success="True")
    assert m.phase == "error"
    assert "range vector" in m.message


def test_a_condition_that_cannot_be_evaluated_is_an_error(prometheus: Program, tmp_path: Path) -> None:
    m = measure(tmp_path, address=prometheus.url, query="vector(1)", success="result[3] < 1")
    assert m.phase == "error"
    assert "index out of range" in m.message


def test_an_unsafe_version_never_reaches_the_query(prometheus: Program, tmp_path: Path) -> None:
    options = loaded_options(tmp_path, "shop", prometheus.url)
    request = make_request(options, tmp_path, version='1"} or vector(0) or {"')
    m = PrometheusCheck().measure(request, StepContext())
    assert m.phase == "error"
    assert "not plain text" in m.message


def test_unreachable_is_an_error_naming_the_address(refused_address: str, tmp_path: Path) -> None:
    m = measure(tmp_path, address=refused_address, query="up", success="True")
    assert m.phase == "error"
    assert refused_address in m.message


def test_timeout_is_an_error(silent_address: str, tmp_path: Path) -> None:
    m = measure(tmp_path, address=silent_address, query="up", success="True", timeout=0.3)
    assert m.phase == "error"
    assert "timed out" in m.message


@pytest.mark.parametrize(
    "options",
    [
        {"address": "http://p", "query": "up"},  # no condition
        {"address": "p:9090", "query": "up", "success": "true"},
        {"address": "http://p", "query": "", "success": "true"},
        {"address": "http://p", "query": "up", "success": "resul[0] < 1"},
        {"address": "http://p", "query": "up", "success": "result.__class__"},
        {"address": "http://p", "query": "up", "success": "__import__('os')"},
        {"address": "http://p", "query": "up", "success": "x = 1"},
        {"address": "http://p", "query": "up", "success": "result[0] <"},
        {"address": "http://p", "query": "up", "success": "true", "empty": "maybe"},
        {"address": "http://p", "query": "up", "success": "true", "timeout": 0},
    ],
)
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PrometheusOptions.model_validate(options)
