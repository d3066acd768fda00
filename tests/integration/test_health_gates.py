"""Health gates in the pipeline: a release whose error ratio rises in staging (seen by a real Prometheus)
fails there and never reaches production; one whose ratio stays flat goes all the way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gitrepos import commit
from tests.monitoring import Program, TrafficApp, query, start_prometheus, traffic_app, wait_for
from tests.web.conftest import API_SECTION, Api, make_api

CONFIG = """\
environments: [integration, staging, production]
teams: {{publishing: {{notify: []}}}}
defaults:
  deploy: {{driver: fake, duration: 0.05}}
apps:
  web:
    repo: ./repos/web
    team: publishing
    environments:
      staging:
        checks:
          - name: error-ratio
            type: prometheus
            address: {address}
            query: >-
              sum(rate(http_requests_total{{{{app="{{app}}",env="{{env}}",version="{{version}}",code=~"5.."}}}}[15s]))
              / sum(rate(http_requests_total{{{{app="{{app}}",env="{{env}}",version="{{version}}"}}}}[15s]))
            success: result[0] < 0.01
            count: 2
            interval: 1s
"""


@pytest.fixture(scope="module")
def traffic() -> Iterator[TrafficApp]:
    with traffic_app() as app:
        yield app


@pytest.fixture(scope="module")
def prometheus(traffic: TrafficApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Program]:
    with start_prometheus(tmp_path_factory.mktemp("prometheus"), traffic.url) as program:
        wait_for(lambda: query(program, 'up{job="traffic"} == 1'), what="the first scrape", program=program)
        yield program


@pytest.fixture
def api(tmp_path: Path, prometheus: Program) -> Iterator[Api]:
    yield from make_api(
        tmp_path, f"sqlite:///{tmp_path / 'conveyor.db'}", CONFIG.format(address=prometheus.url) + API_SECTION
    )


def release_serving(api: Api, traffic: TrafficApp, prometheus: Program, error_ratio: float) -> str:
    """Cut a release of web and make staging serve it at ``error_ratio``; its label."""
    label: str = api.ok("/api/apps/web/releases")["label"]
    traffic.serve("web", "staging", label, rps=50, error_ratio=error_ratio)
    promql = f'rate(http_requests_total{{app="web",version="{label}",code="200"}}[15s]) > 0'
    wait_for(lambda: query(prometheus, promql), what=f"samples of {label}", program=prometheus)
    return label


def test_a_release_whose_errors_rise_in_staging_never_reaches_production(
    api: Api, traffic: TrafficApp, prometheus: Program
) -> None:
    label = release_serving(api, traffic, prometheus, error_ratio=0.25)
    api.work()
    staging = api.environment("web", "staging")
    assert staging["state"] == "failed", staging
    assert api.environment("web", "production")["state"] != "succeeded"
    why = api.get("/api/apps/web/why", params={"environment": "production"}).json()
    assert "blocked" in why["environments"]["production"]["explanation"]
    logs = api.get("/api/apps/web/logs", params={"environment": "staging"}).text  # JSON: quotes escaped
    assert f'version=\\"{label}\\"' in logs and "success condition `result[0] < 0.01` is false" in logs


def test_a_release_whose_errors_stay_flat_goes_to_production(
    api: Api, traffic: TrafficApp, prometheus: Program
) -> None:
    commit(api.project.repo("web"), {"calm.txt": "steady\n"}, "a calm change")  # a release of its own
    release_serving(api, traffic, prometheus, error_ratio=0.001)
    api.work()
    assert api.environment("web", "staging")["state"] == "succeeded"
    assert api.environment("web", "production")["state"] == "succeeded"
