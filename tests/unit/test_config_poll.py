"""``poll``: on an app, or in ``defaults`` for every app; a duration of at least 5s, or ``none``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.config_fakes import load, problems, use_fake_plugins


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    use_fake_plugins(monkeypatch)


def config(defaults: str = "", web: str = "", api: str = "") -> str:
    return f"""\
teams: {{publishing: {{}}}}
defaults:
  deploy: {{driver: fake}}
{defaults}apps:
  web:
    repo: https://git.example.org/web.git
    team: publishing
{web}  api:
    repo: https://git.example.org/api.git
    team: publishing
{api}"""


def test_no_poll_by_default() -> None:
    cfg = load(config())
    assert cfg.app("web").poll is None and cfg.app("api").poll is None


def test_poll_on_one_app() -> None:
    cfg = load(config(web="    poll: 60s\n"))
    assert cfg.app("web").poll == 60.0
    assert cfg.app("api").poll is None


def test_poll_in_defaults_applies_to_every_app_and_none_switches_it_off() -> None:
    cfg = load(config(defaults="  poll: 2m\n", web="    poll: none\n", api="    poll: 30\n"))
    assert cfg.app("web").poll is None
    assert cfg.app("api").poll == 30.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1s", "'poll' in app 'web': must be at least 5s (each poll asks the git server), got 1s"),
        ("0", "'poll' in app 'web': must be at least 5s (each poll asks the git server), got 0s"),
        ("soon", "'poll' in app 'web': expected a duration of at least 5s or none"),
        ("true", "'poll' in app 'web': expected a duration of at least 5s or none"),
        ("-10s", "'poll' in app 'web': expected a duration of at least 5s or none"),
    ],
)
def test_a_bad_poll_is_reported_at_its_position(value: str, message: str) -> None:
    (problem,) = problems(config(web=f"    poll: {value}\n"))
    assert problem.startswith(f"conveyor.yaml:8:11: {message}"), problem


def test_a_bad_poll_in_defaults_is_reported_there() -> None:
    (problem,) = problems(config(defaults="  poll: 100ms\n"))
    assert problem.startswith("conveyor.yaml:4:9: 'poll' in defaults: must be at least 5s"), problem


GITHUB = """\
teams: {publishing: {}}
github:
  webhook_secret: a-webhook-secret-value
defaults:
  deploy: {driver: fake}
  poll: 2m
  ci: {required: [test]}
apps:
  web:
    repo: https://github.com/example/web.git
    team: publishing
  legacy:
    repo: https://git.example.org/legacy.git
    team: publishing
"""


def test_a_poll_in_defaults_leaves_apps_on_github_to_their_webhooks() -> None:
    cfg = load(GITHUB)
    assert cfg.app("web").github == "example/web" and cfg.app("web").poll is None
    assert cfg.app("legacy").github is None and cfg.app("legacy").poll == 120.0
    assert cfg.app("legacy").ci is None  # the CI gate is GitHub's: a polled head is released as it is


def test_polling_an_app_that_waits_for_ci_on_github_is_refused() -> None:
    text = GITHUB.replace(
        "    repo: https://github.com/example/web.git\n", "    repo: https://github.com/example/web.git\n    poll: 1m\n"
    )
    (message,) = problems(text)
    assert message.startswith("conveyor.yaml:11:11: app 'web' waits for CI on GitHub")
