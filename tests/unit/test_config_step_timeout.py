"""``step_timeout``: the engine's deadline for every deploy and check step, and redaction of secrets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conveyor.config.schema import DEFAULT_CHECK_TIMEOUT, DEFAULT_DEPLOY_TIMEOUT
from tests.unit.config_fakes import load, problems, use_fake_plugins


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    use_fake_plugins(monkeypatch)


APP = "teams: {t: }\ndefaults: {deploy: {driver: fake}}\napps:\n  web:\n    repo: .\n    team: t\n"


def test_every_step_has_a_deadline_by_default() -> None:
    text = APP + "    checks: [{name: smoke, type: fake, count: 3, interval: 10s, initial_delay: 5s}]\n"
    staging = load(text).app("web").environments["staging"]
    assert staging.deploy.step_timeout == DEFAULT_DEPLOY_TIMEOUT == 3600
    assert staging.checks[0].step_timeout == DEFAULT_CHECK_TIMEOUT + 5 + 3 * 10  # beyond its own waits


def test_step_timeout_is_inherited_and_is_not_a_driver_option() -> None:
    text = (
        "teams: {t: }\ndefaults: {deploy: {driver: command, argv: [x], timeout: 5m, step_timeout: 10m}}\n"
        "apps:\n  web:\n    repo: .\n    team: t\n"
        "    environments: {production: {deploy: {step_timeout: 1h}}}\n"
        "    checks: [{name: smoke, type: fake, step_timeout: 90s}]\n"
    )
    web = load(text).app("web")
    assert web.environments["staging"].deploy.step_timeout == 600
    assert web.environments["production"].deploy.step_timeout == 3600
    assert "step_timeout" not in web.environments["production"].deploy.options.model_dump()
    assert web.environments["production"].deploy.options.model_dump()["timeout"] == 300  # the driver's own
    assert web.environments["staging"].checks[0].step_timeout == 90


def test_a_bad_step_timeout_is_reported_where_it_was_written() -> None:
    text = APP + "    deploy: {step_timeout: soon}\n    checks: [{name: smoke, type: fake, step_timeout: 0}]\n"
    assert problems(text) == [
        "conveyor.yaml:7:28: 'step_timeout' in deploy (driver 'fake'): invalid duration 'soon'"
        " (use e.g. 500ms, 1s, 10m, 1h or a number of seconds)",
        "conveyor.yaml:8:54: 'step_timeout' in check 'smoke': input should be greater than 0",
    ]


def test_a_check_deadline_shorter_than_its_own_waits_is_an_error() -> None:
    text = APP + "    checks: [{name: smoke, type: fake, count: 3, interval: 1m, step_timeout: 2m}]\n"
    assert problems(text) == [
        "conveyor.yaml:7:78: step_timeout (120s) of check 'smoke' is not longer than its own waits"
        " (initial_delay + count x interval = 180s)"
    ]


def test_secrets_are_redacted_longest_first() -> None:
    """Where one secret is the start of another, replacing a shorter one first leaves the longer one's
    tail in the clear. With every prefix of a secret as a secret, a set's iteration order would put a
    shorter one first almost always."""
    secret = "s3cret-value-0123"
    prefixes = frozenset(secret[:n] for n in range(3, len(secret) + 1))
    config = replace(load(APP), secrets=prefixes)
    assert config.redact(f"token={secret}; short={secret[:5]}.") == "token=********; short=********."
