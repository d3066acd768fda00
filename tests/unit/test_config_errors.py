"""Every kind of config problem is reported at its FILE:LINE:COL, all at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conveyor.config import ConfigError, Problem, load_config
from tests.unit.config_fakes import problems, use_fake_plugins


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    use_fake_plugins(monkeypatch)


BASE = """\
teams:
  publishing: {}
groups:
  router: {description: behind the router}
defaults:
  deploy:
    driver: fake
apps:
"""
APP = BASE + "  web:\n    repo: ./web\n    team: publishing\n"
NAME_RULE = "^[a-z0-9][a-z0-9_.-]*$"

CASES: list[tuple[str, str, list[str]]] = [
    (
        "yaml syntax error",
        "apps: [one\nteams: {}\n",
        ["conveyor.yaml:2:6: invalid YAML: expected ',' or ']', but got ':'"],
    ),
    (
        "duplicate key",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    team: publishing\n",
        ["conveyor.yaml:12:5: duplicate key 'team' (first at line 11)"],
    ),
    (
        "unknown app key with did-you-mean",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    tirr: auto\n",
        ["conveyor.yaml:12:5: unknown key 'tirr' in app 'web' (did you mean 'tier'?)"],
    ),
    (
        "unknown top-level key",
        "enviroments: [a]\n" + BASE,
        ["conveyor.yaml:1:1: unknown key 'enviroments' in the top level (did you mean 'environments'?)"],
    ),
    (
        "wrong type",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    branch: [main]\n",
        ["conveyor.yaml:12:13: 'branch' in app 'web': expected a string"],
    ),
    (
        "missing required field",
        BASE + "  web:\n    team: publishing\n",
        ["conveyor.yaml:9:3: missing required key 'repo' in app 'web'"],
    ),
    (
        "unknown team",
        BASE + "  web:\n    repo: ./web\n    team: publishin\n",
        ["conveyor.yaml:11:11: unknown team 'publishin' (did you mean 'publishing'?) (known: publishing)"],
    ),
    (
        "unknown group",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    groups: [routr]\n",
        ["conveyor.yaml:12:14: unknown group 'routr' (did you mean 'router'?) (known: router)"],
    ),
    (
        "unknown environment key in an app",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    environments:\n      prod: {}\n",
        [
            "conveyor.yaml:13:7: unknown environment 'prod' (did you mean 'production'?)"
            " (known: integration, staging, production)"
        ],
    ),
    (
        "manual tier without reason",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    tier: manual\n",
        ["conveyor.yaml:12:11: app 'web' has tier manual but no reason (add `reason: ...` saying why)"],
    ),
    (
        "bad tier value",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    tier: sometimes\n",
        ["conveyor.yaml:12:11: 'tier' in app 'web': input should be 'auto', 'manual' or 'bake'"],
    ),
    (
        "unknown driver",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    deploy: {driver: comand, argv: [x]}\n",
        ["conveyor.yaml:12:22: unknown driver 'comand' (did you mean 'command'?) (known: command, fake, local)"],
    ),
    (
        "unknown check type",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    checks:\n      - {name: up, type: htp}\n",
        ["conveyor.yaml:13:26: unknown check type 'htp' (did you mean 'http'?) (known: command, fake, http)"],
    ),
    (
        "duplicate check names",
        BASE
        + "  web:\n    repo: ./web\n    team: publishing\n    checks:\n"
        + "      - {name: up, type: fake}\n      - {name: up, type: fake}\n",
        ["conveyor.yaml:14:16: duplicate check name 'up' (first at line 13)"],
    ),
    (
        "missing check option",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    checks:\n      - {name: up, type: http}\n",
        ["conveyor.yaml:13:9: missing required key 'url' in check 'up' (type 'http')"],
    ),
    (
        "unknown check option with did-you-mean",
        BASE
        + "  web:\n    repo: ./web\n    team: publishing\n    checks:\n"
        + "      - name: up\n        type: http\n        url: http://x\n        expect_statu: 200\n",
        ["conveyor.yaml:16:9: unknown key 'expect_statu' in check 'up' (type 'http') (did you mean 'expect_status'?)"],
    ),
    (
        "wrong check option type",
        BASE
        + "  web:\n    repo: ./web\n    team: publishing\n    checks:\n"
        + "      - {name: up, type: http, url: http://x, expect_status: lots}\n",
        ["conveyor.yaml:13:62: 'expect_status' in check 'up' (type 'http'): expected an integer"],
    ),
    (
        "invalid limit",
        APP + "    checks:\n      - {name: up, type: fake, count: 0}\n",
        ["conveyor.yaml:13:39: 'count' in check 'up': input should be greater than or equal to 1"],
    ),
    (
        "invalid duration",
        APP + "    checks:\n      - {name: up, type: fake, interval: 5x}\n",
        [
            "conveyor.yaml:13:42: 'interval' in check 'up': invalid duration '5x'"
            " (use e.g. 500ms, 1s, 10m, 1h or a number of seconds)"
        ],
    ),
    (
        "invalid duration in a driver option",
        APP + "    deploy: {driver: command, argv: [x], timeout: soon}\n",
        ["conveyor.yaml:12:51: 'timeout' in deploy (driver 'command'): expected a number"],
    ),
    (
        "missing deploy driver",
        "teams: {publishing: {}}\napps:\n  web:\n    repo: ./web\n    team: publishing\n",
        [
            "conveyor.yaml:3:3: no deploy driver for app 'web' in environment 'integration'"
            " (set deploy.driver in defaults, the app or the environment)",
            "conveyor.yaml:3:3: no deploy driver for app 'web' in environment 'staging'"
            " (set deploy.driver in defaults, the app or the environment)",
            "conveyor.yaml:3:3: no deploy driver for app 'web' in environment 'production'"
            " (set deploy.driver in defaults, the app or the environment)",
        ],
    ),
    (
        "empty environments",
        "environments: []\n" + BASE,
        ["conveyor.yaml:1:15: environments must list at least one environment"],
    ),
    (
        "duplicate environment",
        "environments: [a, b, a]\n" + BASE,
        ["conveyor.yaml:1:22: duplicate environment 'a' (first at line 1)"],
    ),
    (
        "bad environment name",
        "environments: [a, Prod]\n" + BASE,
        ["conveyor.yaml:1:19: invalid name 'Prod' in 'environments': names must match " + NAME_RULE],
    ),
    (
        "bad app name",
        BASE + "  Web:\n    repo: ./web\n    team: publishing\n",
        ["conveyor.yaml:9:3: invalid name 'Web' in 'apps': names must match " + NAME_RULE],
    ),
    (
        "bad group name",
        BASE.replace("  router:", "  the router:"),
        ["conveyor.yaml:4:3: invalid name 'the router' in 'groups': names must match " + NAME_RULE],
    ),
    (
        "bad var name and reserved var",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    vars: {my-port: 1}\n  api:\n"
        "    repo: ./api\n    team: publishing\n    vars: {env: x}\n",
        [
            "conveyor.yaml:12:12: invalid name 'my-port' in 'vars' of app 'web':"
            " names must match ^[A-Za-z_][A-Za-z0-9_]*$",
            "conveyor.yaml:16:12: var 'env' is reserved: conveyor fills {env} itself",
        ],
    ),
    (
        "var with a list value",
        BASE + "  web:\n    repo: ./web\n    team: publishing\n    vars: {port: [1]}\n",
        ["conveyor.yaml:12:18: 'port' in 'vars' of app 'web': a var must be a string, number or boolean"],
    ),
    (
        "unknown placeholder",
        BASE
        + "  web:\n    repo: ./web\n    team: publishing\n    environments:\n      staging:\n"
        + "        checks: [{name: up, type: http, url: 'http://h:{prot}/'}]\n"
        + "        vars: {port: 1}\n",
        [
            "conveyor.yaml:14:46: unknown placeholder {prot} in app 'web' environment 'staging'"
            " (did you mean 'port'?) (known: app, env, port)"
        ],
    ),
    (
        "unbalanced brace",
        APP + "    checks: [{name: up, type: http, url: 'x}'}]\n",
        [
            f"conveyor.yaml:12:42: unbalanced '}}' in app 'web' environment '{env}' (write '}}}}' for a literal brace)"
            for env in ("integration", "staging", "production")
        ],
    ),
    (
        "the top level is not a mapping",
        "- one\n- two\n",
        ["conveyor.yaml:1:1: the top level must be a mapping (environments, teams, apps, ...)"],
    ),
    (
        "empty file",
        "# nothing yet\n",
        ["conveyor.yaml:1:1: the file is empty (run `conveyor init` for a starter config)"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_problem_is_reported_at_its_position(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_missing_file_says_how_to_create_one() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(Path("nowhere.yaml"), {})
    assert [str(p) for p in caught.value.problems] == [
        "nowhere.yaml:1:1: no such file (run `conveyor init` to create one)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = textwrap.dedent(
        """\
        teams: {publishing: {}}
        defaults:
          deploy: {driver: fake}
        apps:
          web:
            repo: ./web
            team: publishers
            tirr: auto
          api:
            repo: ./api
            team: publishing
            groups: [router]
            checks:
              - {name: up, type: http}
        """
    )
    assert problems(text) == [
        "conveyor.yaml:7:11: unknown team 'publishers' (did you mean 'publishing'?) (known: publishing)",
        "conveyor.yaml:8:5: unknown key 'tirr' in app 'web' (did you mean 'tier'?)",
        "conveyor.yaml:12:14: unknown group 'router' (known: none)",
        "conveyor.yaml:14:9: missing required key 'url' in check 'up' (type 'http')",
    ]


def test_a_broken_section_does_not_cascade() -> None:
    text = "teams: [publishing]\ndefaults: {deploy: {driver: fake}}\napps:\n  web: {repo: ., team: publishing}\n"
    assert problems(text) == ["conveyor.yaml:1:8: 'teams' in the top level: expected a mapping"]


def test_problem_string_format() -> None:
    assert str(Problem("c.yaml", 3, 7, "bad")) == "c.yaml:3:7: bad"


def test_a_broken_plugin_is_a_problem_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor import plugins

    def broken(group: str) -> dict[str, object]:
        raise ModuleNotFoundError("No module named 'conveyor.drivers.gone'")

    monkeypatch.setattr(plugins, "_load", broken)
    text = "teams: {t: {}}\napps:\n  web: {repo: ./web, team: t, deploy: {driver: gone}}\n"
    assert problems(text) == [
        "conveyor.yaml:3:48: driver 'gone' could not be loaded: ModuleNotFoundError: No module named"
        " 'conveyor.drivers.gone'"
    ]
