"""Durations, ``{placeholders}`` and ``${VAR}``: how single values are read."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import ConfigError
from conveyor.config.durations import parse_duration
from conveyor.config.placeholders import PlaceholderError, fill
from tests.unit.config_fakes import load, problems, use_fake_plugins


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    use_fake_plugins(monkeypatch)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("1s", 1.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("2.5s", 2.5),
        ("30", 30.0),
        (7, 7.0),
        (0.25, 0.25),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["5x", "", "1 day", "-1s", True, None, -3, "99999999999d", 4e9, float("inf"), float("nan")]
)
def test_invalid_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("http://h:{port}/", "http://h:8101/"),
        ("{{literal}} {port}", "{literal} 8101"),
        ("no placeholders", "no placeholders"),
        ("{app}-{env}", "web-staging"),
    ],
)
def test_placeholders(template: str, expected: str) -> None:
    assert fill(template, {"port": "8101", "app": "web", "env": "staging"}) == expected


@pytest.mark.parametrize("template", ["{nope}", "a { b", "a } b"])
def test_bad_placeholders(template: str) -> None:
    with pytest.raises(PlaceholderError):
        fill(template, {"port": "1"})


APP = "teams: {t: }\ndefaults: {deploy: {driver: fake}}\napps:\n  web:\n    repo: .\n    team: t\n"


def test_duration_strings_are_converted_for_float_options() -> None:
    text = APP + "    deploy: {driver: command, argv: [x], timeout: 10m}\n"
    assert load(text).app("web").environments["staging"].deploy.options.model_dump()["timeout"] == 600.0


def test_placeholders_are_filled_in_nested_options() -> None:
    deploy = "{driver: command, argv: ['--region={region}'], env: {R: '{env}'}}"
    text = APP + "    vars: {region: eu}\n    deploy: " + deploy + "\n"
    options = load(text).app("web").environments["production"].deploy.options.model_dump()
    assert (options["argv"], options["env"]) == (["--region=eu"], {"R": "production"})


def test_environment_variables_are_substituted_and_kept_as_secrets() -> None:
    text = APP + "    deploy: {driver: command, argv: ['--token=${TOKEN}', '${{LITERAL}}']}\n"
    config = load(text, {"TOKEN": "s3cr{e}t"})
    options = config.app("web").environments["staging"].deploy.options.model_dump()
    assert options["argv"] == ["--token=s3cr{e}t", "${LITERAL}"]  # braces in a secret are not placeholders
    assert config.secrets == frozenset({"s3cr{e}t"})
    assert config.redact("token s3cr{e}t") == "token ********"


def test_an_unset_environment_variable_is_a_problem() -> None:
    text = APP + "    deploy: {driver: command, argv: ['${MISSING}']}\n"
    assert problems(text) == ["conveyor.yaml:7:38: environment variable 'MISSING' is not set"]


def test_a_secret_never_appears_in_an_error() -> None:
    text = APP + "    branch: ${BRANCH_TOKEN}\n    deploy: {driver: command, argv: [x], timeout: '${TOKEN}'}\n"
    with pytest.raises(ConfigError) as caught:
        load(text, {"TOKEN": "hunter2", "BRANCH_TOKEN": "hunter2-branch"})
    report = str(caught.value)
    assert "hunter2" not in report
    assert [str(p) for p in caught.value.problems] == [
        "conveyor.yaml:8:51: 'timeout' in deploy (driver 'command'): expected a number"
    ]


def test_the_database_password_is_a_secret() -> None:
    config = load(APP, {"CONVEYOR_DATABASE_URL": "postgresql://conveyor:pw0rd@db/conveyor"})
    assert "pw0rd" in config.secrets


def test_a_duration_past_100_years_or_below_its_minimum_is_a_config_error() -> None:
    """Both said in the units a user writes; a longer one passed check, then overflowed a deadline."""
    found = problems(APP + "errors: {retention: 99999999999d, counts_retention: 30s}\n")
    assert any("a duration can be at most 100 years (36500d)" in p for p in found), found
    assert any("must be at least 1m" in p for p in found), found
    assert load(APP + "errors: {retention: 36500d, counts_retention: 36500d}\n").errors.retention == 36500 * 86400
