"""defaults < app < app.environments.<env>, and what the resolved Config holds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conveyor.config import Config
from tests.unit.config_fakes import CommandOptions, HttpOptions, LocalOptions, load, use_fake_plugins


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    use_fake_plugins(monkeypatch)


EXAMPLE = textwrap.dedent(
    """\
    notifiers:
      chat: {type: log}
    teams:
      publishing:
        notify: [chat]
    groups:
      router: {description: apps behind the shared router}
    defaults:
      tier: auto
      vars: {region: a, size: small}
      deploy:
        driver: local
        start: ["python3", "app.py"]
      checks:
        - name: health
          type: http
          url: "http://127.0.0.1:{port}/health?app={app}&env={env}"
          count: 3
          interval: 1s
    apps:
      web:
        repo: ./repos/web
        team: publishing
        groups: [router]
        vars: {size: large}
        environments:
          integration: {vars: {port: 8101}}
          staging:
            vars: {port: 8102, region: b}
            deploy: {cwd: /srv/web}
            checks:
              - {name: smoke, type: fake, outcome: fail, initial_delay: 500ms}
          production:
            vars: {port: 8103}
            checks: []
      publisher:
        repo: https://git.example.org/publisher.git
        team: publishing
        tier: manual
        reason: runs data migrations by hand
        deploy:
          driver: command
          argv: ["./bin/deploy", "{region}"]
          timeout: 10m
        checks: []
        environments:
          production:
            vars: {region: c}
            deploy: {argv: ["./bin/deploy-prod"]}
    """
)


@pytest.fixture
def config() -> Config:
    return load(EXAMPLE)


def test_vars_merge_key_by_key(config: Config) -> None:
    web = config.app("web").environments
    assert web["integration"].vars == {"region": "a", "size": "large", "port": "8101"}
    assert web["staging"].vars == {"region": "b", "size": "large", "port": "8102"}


def test_a_deploy_block_with_the_same_driver_merges(config: Config) -> None:
    web = config.app("web").environments
    assert web["integration"].deploy.options == LocalOptions(start=["python3", "app.py"])
    assert web["staging"].deploy.options == LocalOptions(start=["python3", "app.py"], cwd="/srv/web")


def test_a_deploy_block_with_another_driver_replaces(config: Config) -> None:
    publisher = config.app("publisher").environments
    assert publisher["staging"].deploy.driver == "command"
    assert publisher["staging"].deploy.options == CommandOptions(argv=["./bin/deploy", "a"], timeout=600.0)
    assert publisher["production"].deploy.options == CommandOptions(argv=["./bin/deploy-prod"], timeout=600.0)


def test_a_deeper_check_list_replaces_the_inherited_one(config: Config) -> None:
    web = config.app("web").environments
    assert [c.name for c in web["integration"].checks] == ["health"]
    assert [c.name for c in web["staging"].checks] == ["smoke"]
    assert web["production"].checks == ()
    assert config.app("publisher").environments["staging"].checks == ()


def test_check_limits_and_options_are_split(config: Config) -> None:
    health = config.app("web").environments["integration"].checks[0]
    assert health.options == HttpOptions(url="http://127.0.0.1:8101/health?app=web&env=integration")
    assert (health.limits.count, health.limits.interval, health.limits.consecutive_error_limit) == (3, 1.0, 4)
    smoke = config.app("web").environments["staging"].checks[0]
    assert smoke.limits.initial_delay == 0.5


def test_every_app_gets_every_environment_in_order(config: Config) -> None:
    for app in config.apps.values():
        assert list(app.environments) == ["integration", "staging", "production"]


def test_app_fields(config: Config, tmp_path: Path) -> None:
    web, publisher = config.app("web"), config.app("publisher")
    assert web.repo == str(tmp_path.resolve() / "repos" / "web")
    assert publisher.repo == "https://git.example.org/publisher.git"
    assert (web.branch, web.tier, web.reason, web.groups) == ("main", "auto", None, ("router",))
    assert (publisher.tier, publisher.reason) == ("manual", "runs data migrations by hand")
    assert web.lock_names("staging") == ("app:web:staging", "group:router:staging")


def test_top_level_fields(config: Config, tmp_path: Path) -> None:
    folder = tmp_path.resolve()
    assert config.path == folder / "conveyor.yaml"
    assert config.environments == ("integration", "staging", "production")
    assert config.teams["publishing"].notify == ("chat",)
    assert config.groups == {"router": "apps behind the shared router"}
    assert config.state_dir == folder / ".conveyor"
    assert config.database_url == f"sqlite:///{folder / 'conveyor.db'}"


MINIMAL = "teams: {t: }\ndefaults: {deploy: {driver: fake}}\napps:\n  web: {repo: ., team: t}\n"


@pytest.mark.parametrize(
    ("extra", "environ", "expected"),
    [
        ("", {}, "sqlite:///{folder}/conveyor.db"),
        ("database_url: postgresql://db/conveyor\n", {}, "postgresql://db/conveyor"),
        ("database_url: sqlite:///data/c.db\n", {}, "sqlite:///{folder}/data/c.db"),
        ("database_url: sqlite:////abs/c.db\n", {}, "sqlite:////abs/c.db"),
        (
            "database_url: postgresql://db/x\n",
            {"CONVEYOR_DATABASE_URL": "postgresql://other/y"},
            "postgresql://other/y",
        ),
    ],
)
def test_database_url_precedence(tmp_path: Path, extra: str, environ: dict[str, str], expected: str) -> None:
    config = load(extra + MINIMAL, environ)
    assert config.database_url == expected.format(folder=tmp_path.resolve())


def test_state_dir_is_resolved_against_the_config_folder(tmp_path: Path) -> None:
    assert load("state_dir: var/state\n" + MINIMAL).state_dir == tmp_path.resolve() / "var" / "state"


def test_groups_may_be_a_plain_list() -> None:
    config = load("groups: [router, batch]\n" + MINIMAL)
    assert config.groups == {"router": "", "batch": ""}


def test_custom_environments_and_var_types() -> None:
    text = "environments: [dev, live]\n" + MINIMAL.replace("team: t}", "team: t, vars: {on: true, n: 1.5}}")
    app = load(text).app("web")
    assert list(app.environments) == ["dev", "live"]
    assert app.environments["live"].vars == {"on": "true", "n": "1.5"}


def test_tier_and_branch_come_from_defaults() -> None:
    text = MINIMAL.replace("{deploy:", "{tier: manual, branch: trunk, deploy:").replace(
        "team: t}", "team: t, reason: audited}"
    )
    app = load(text).app("web")
    assert (app.tier, app.branch, app.reason) == ("manual", "trunk", "audited")


def test_yaml_merge_keys_work() -> None:
    text = MINIMAL + "  api:\n    <<: {repo: ., team: t}\n    branch: dev\n"
    assert load(text).app("api").branch == "dev"
