"""Writes need a configured bearer token; reads do not. A refused write changes nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from conveyor.config import ConfigError, load_config
from conveyor.store.tables import Event, Release
from conveyor.web import create_app
from tests.web.conftest import OTHER_TOKEN, TOKEN, Api, environ

WRITES = [
    ("/api/apps/web/releases", {}),
    ("/api/apps/web/deploy", {"version": "v1.0", "environment": "staging"}),
    ("/api/apps/web/promote", {}),
    ("/api/apps/web/unblock", {"reason": "r"}),
]


def counts(api: Api) -> tuple[int, int]:
    with api.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Release)) or 0,
            session.scalar(select(func.count()).select_from(Event)) or 0,
        )


@pytest.mark.parametrize(("path", "body"), WRITES)
@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing bearer token: send Authorization: Bearer <token>"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing bearer token: send Authorization: Bearer <token>"),
        ({"Authorization": "Bearer wrong-token-0123456789"}, "invalid bearer token"),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "invalid bearer token"),
    ],
)
def test_a_write_without_a_valid_token_is_401_and_changes_nothing(
    api: Api, path: str, body: dict[str, str], headers: dict[str, str], message: str
) -> None:
    before = counts(api)
    response = api.client.post(path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": {"code": "unauthorized", "message": message}}
    assert TOKEN[:8] not in response.text and "wrong-token" not in response.text
    assert counts(api) == before


def test_each_token_records_its_own_name_as_the_actor(api: Api) -> None:
    assert api.post("/api/apps/web/releases", token=OTHER_TOKEN).status_code == 201
    with api.db.read() as session:
        actors = list(session.scalars(select(Event.actor).where(Event.kind == "release.created")))
    assert actors == ["api:bot"]


def test_reads_need_no_token(api: Api) -> None:
    for path in ("/api/apps", "/api/apps/web", "/api/apps/web/why", "/api/apps/web/history", "/healthz", "/metrics"):
        assert api.get(path).status_code == 200, path


def test_without_configured_tokens_every_write_is_refused(api: Api) -> None:
    api.project.config.write_text(api.project.config.read_text().split("api:\n")[0])
    config = load_config(api.project.config, environ(api.db.url))
    assert config.api_tokens == ()
    client = TestClient(create_app(config, api.db))
    response = client.post("/api/apps/web/releases", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 401


def test_only_digests_of_tokens_are_kept(api: Api) -> None:
    assert TOKEN not in repr(api.config.api_tokens)
    assert [t.name for t in api.config.api_tokens] == ["ci", "bot"]
    assert all(len(t.sha256) == 32 for t in api.config.api_tokens)
    assert api.config.redact(f"token {TOKEN}") == "token ********"


# -- the config section ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "problems"),
    [
        (
            'api:\n  tokens:\n    - {name: ci, token: "short"}\n',
            [
                "conveyor.yaml:12:25: 'token' in item 1 of 'tokens' of 'api': "
                "an API token must be at least 16 characters"
            ],
        ),
        (
            'api:\n  tokens:\n    - {name: ci, token: "0123456789abcdef"}\n'
            '    - {name: ci, token: "fedcba9876543210"}\n',
            ["conveyor.yaml:13:14: duplicate API token name 'ci' (first at line 12)"],
        ),
        (
            'api:\n  tokens:\n    - {name: ci, tokn: "0123456789abcdef"}\n',
            [
                "conveyor.yaml:12:7: missing required key 'token' in item 1 of 'tokens' of 'api'",
                "conveyor.yaml:12:18: unknown key 'tokn' in item 1 of 'tokens' of 'api' (did you mean 'token'?)",
            ],
        ),
        ("api:\n  token: []\n", ["conveyor.yaml:11:3: unknown key 'token' in 'api' (did you mean 'tokens'?)"]),
    ],
)
def test_the_api_section_is_validated_with_positions(api: Api, section: str, problems: list[str]) -> None:
    base = api.project.config.read_text().split("api:\n")[0]
    api.project.config.write_text(base + section)
    with pytest.raises(ConfigError) as caught:
        load_config(api.project.config, {})
    assert [str(p).split("/")[-1] for p in caught.value.problems] == problems
