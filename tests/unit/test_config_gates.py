"""The config of the health gates: prometheus and alertmanager checks, and the ``alertmanager`` section,
each mistake reported at its line by ``conveyor check`` (real plugins, not the config fakes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.checks.alertmanager import AlertmanagerOptions
from conveyor.checks.prometheus import PrometheusOptions
from conveyor.config import ConfigError, load_config

BASE = """\
environments: [staging, production]
teams: {t: {notify: []}}
defaults: {deploy: {driver: fake}}
apps:
  web:
    repo: .
    team: t
    vars: {job: web-frontend}
    checks:
      - name: errors
        type: prometheus
        address: http://127.0.0.1:9090
        query: 'sum(rate(x{{app="{app}",env="{env}",job="{job}",version="{version}"}}[5m]))'
        success: result[0] < 0.01
      - name: alerts
        type: alertmanager
        address: http://127.0.0.1:9093
        matchers: ['app="{app}"', 'env="{env}"', 'severity=~"critical|page"', 'sha="{sha}"']
"""
SECTION = """\
alertmanager:
  token: ${AM_TOKEN}
  basic_auth: {username: alertmanager, password: "${AM_PASSWORD}"}
  stop_on:
    production: {severity: critical, team: 'a "quoted" team'}
    staging: ['severity=~"critical|page"', 'env="staging"']
"""
ENVIRON = {"AM_TOKEN": "token-0123456789abcdef", "AM_PASSWORD": "password-0123456789abcdef"}


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "conveyor.yaml"
    path.write_text(text)
    return load_config(path, ENVIRON)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, text)
    return [f"{p.line}: {p.message}" for p in raised.value.problems]


def test_placeholders_are_filled_and_release_ones_kept_for_measuring(tmp_path: Path) -> None:
    config = load(tmp_path, BASE + SECTION)
    errors, alerts = config.apps["web"].environments["production"].checks  # type: ignore[attr-defined]
    assert isinstance(errors.options, PrometheusOptions)
    assert errors.options.query == (
        'sum(rate(x{app="web",env="production",job="web-frontend",version="{version}"}[5m]))'
    )
    assert isinstance(alerts.options, AlertmanagerOptions)
    assert alerts.options.matchers == ['app="web"', 'env="production"', 'severity=~"critical|page"', 'sha="{sha}"']


def test_the_alertmanager_section(tmp_path: Path) -> None:
    config = load(tmp_path, BASE + SECTION)
    section = config.alertmanager  # type: ignore[attr-defined]
    assert [m.text() for m in section.stop_on["production"]] == [
        'severity="critical"',
        'team="a \\"quoted\\" team"',
    ]
    assert [m.text() for m in section.stop_on["staging"]] == ['severity=~"critical|page"', 'env="staging"']
    assert section.basic_auth[0] == "alertmanager"
    assert ENVIRON["AM_TOKEN"] not in repr(section) and ENVIRON["AM_PASSWORD"] not in repr(section)
    assert set(ENVIRON.values()) <= config.secrets  # type: ignore[attr-defined]


def test_reading_commands_skip_the_section(tmp_path: Path) -> None:
    path = tmp_path / "conveyor.yaml"
    path.write_text(BASE + SECTION)
    assert load_config(path, {}, reading=True).alertmanager is None


def test_mistakes_in_checks_are_found_at_load(tmp_path: Path) -> None:
    text = (
        BASE.replace("success: result[0] < 0.01", "success: reslt[0] < 0.01")
        .replace('severity=~"critical|page"', 'severity=~"(critical"')
        .replace('{{app="{app}"', '{app="{app}"')
    )
    found = problems(tmp_path, text)
    assert any(p.startswith("13: unbalanced '{'") for p in found), found
    assert any(p.startswith("14: 'success' in check 'errors'") and "unknown name 'reslt'" in p for p in found)
    assert any(p.startswith("18: 'matchers' in check 'alerts'") and "invalid regular expression" in p for p in found)


def test_mistakes_in_the_section(tmp_path: Path) -> None:
    section = """\
alertmanager:
  token: ${AM_TOKEN}
  stop_on:
    prod: {severity: critical}
    staging: ['severity~"x"']
    production: []
"""
    assert problems(tmp_path, BASE + section) == [
        "22: stop_on names environment 'prod', which is not configured (staging, production)",
        "23: in alertmanager.stop_on.staging: 'severity~\"x\"' is not a matcher:"
        ' write name="value", name!="value", name=~"re" or name!~"re"',
        "24: stop_on for 'production' has no matchers (it would stop on nothing)",
    ]
    assert problems(tmp_path, BASE + "alertmanager: {stop_on: {production: {severity: critical}}}\n") == [
        "19: 'alertmanager' in the top level:"
        " give token or basic_auth: the credentials Alertmanager's http_config sends"
    ]
    assert problems(tmp_path, BASE + "alertmanager: {token: short}\n") == [
        "19: 'token' in 'alertmanager': must be at least 16 characters"
    ]
