"""The ``github`` section and the apps' ``github``, ``paths`` and ``ci``: values, and problems at FILE:LINE:COL."""

from __future__ import annotations

import base64
import functools
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conveyor.config.github import github_repository, pem_problem
from conveyor.config.resolved import CiPolicy
from tests.unit.config_fakes import load, problems, use_fake_plugins


@pytest.fixture(autouse=True)
def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    use_fake_plugins(monkeypatch)


@functools.cache
def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(kind: str = "RSA PRIVATE KEY") -> str:
    """A real key as GitHub gives it (PKCS#1), or in PKCS#8, or encrypted."""
    formats = {
        "RSA PRIVATE KEY": (serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()),
        "PRIVATE KEY": (serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "ENCRYPTED PRIVATE KEY": (serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")),
    }
    form, encryption = formats[kind]
    return _key().private_bytes(serialization.Encoding.PEM, form, encryption).decode()


def stub_pem(body: bytes) -> str:
    lines = textwrap.wrap(base64.b64encode(body).decode(), 64)
    return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----\n"


BASE = """\
teams: {publishing: {}}
defaults:
  deploy: {driver: fake}
  ci: {required: [test, lint], timeout: 2h}
github:
  webhook_secret: ${SECRET}
  app: {id: 12345, private_key_file: ./github-app.pem}
  reconcile_interval: 5m
apps:
  web:
    repo: https://github.com/alphagov/web.git
    team: publishing
    paths: [services/web/**]
"""
ENV = {"SECRET": "s3cret-webhook-value"}


def test_the_github_section_and_app_settings_resolve(tmp_path: Path) -> None:
    (tmp_path / "github-app.pem").write_text(pem())
    config = load(
        BASE + "  api:\n    repo: ./api\n    github: alphagov/api\n    team: publishing\n    ci: none\n"
        "  local:\n    repo: ./local\n    team: publishing\n",
        ENV,
    )
    assert config.github is not None
    assert (config.github.api_url, config.github.reconcile_interval) == ("https://api.github.com", 300.0)
    assert config.github.app is not None and config.github.app.id == 12345
    assert config.github.app.private_key == pem()
    web, api, local = config.apps["web"], config.apps["api"], config.apps["local"]
    assert (web.github, web.paths, web.ci) == ("alphagov/web", ("services/web/**",), CiPolicy(("test", "lint"), 7200.0))
    assert (api.github, api.ci) == ("alphagov/api", None)
    assert (local.github, local.ci) == (None, None)
    assert "s3cret-webhook-value" in config.secrets and pem().strip() in config.secrets


@pytest.mark.parametrize(
    ("url", "repository"),
    [
        ("https://github.com/alphagov/web.git", "alphagov/web"),
        ("https://github.com/alphagov/web", "alphagov/web"),
        ("git@github.com:alphagov/web.git", "alphagov/web"),
        ("ssh://git@github.com/alphagov/web.git", "alphagov/web"),
        ("https://gitlab.com/alphagov/web.git", None),
        ("./web", None),
    ],
)
def test_an_apps_repository_on_github_is_derived_from_its_url(url: str, repository: str | None) -> None:
    assert github_repository(url) == repository


def test_pem_keys_are_checked() -> None:
    assert pem_problem(pem()) is None
    assert pem_problem(pem(kind="PRIVATE KEY")) is None
    assert pem_problem("not a key") is not None
    assert "encrypted" in (pem_problem(pem(kind="ENCRYPTED PRIVATE KEY")) or "")
    assert pem_problem(stub_pem(b"short")) is not None
    assert pem_problem(stub_pem(b"\x30\x82\x04\xa4" + bytes(range(256)) * 4)) is not None  # the right shape only


def test_github_problems_are_reported_where_they_are(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    text = """\
teams: {publishing: {}}
defaults:
  deploy: {driver: fake}
  ci: {required: [], timeout: soon}
github:
  webhook_secret: ${SECRET}
  app: {id: 1, private_key_file: ./bad.pem}
  reconcile_intervall: 5m
apps:
  web:
    repo: ./web
    team: publishing
    paths: [docs/**]
    ci: {required: [test]}
  api:
    repo: ./api
    team: publishing
    ci: maybe
"""
    assert problems(text, ENV) == [
        "conveyor.yaml:4:18: 'required' in 'ci' of defaults: list should have at least 1 item after validation, not 0",
        "conveyor.yaml:4:31: 'timeout' in 'ci' of defaults: invalid duration 'soon' "
        "(use e.g. 500ms, 1s, 10m, 1h or a number of seconds)",
        "conveyor.yaml:8:3: unknown key 'reconcile_intervall' in 'github' (did you mean 'reconcile_interval'?)",
        "conveyor.yaml:13:5: app 'web' sets 'paths' but has no GitHub repository "
        "(add `github: owner/name`, or a github.com repo URL)",
        "conveyor.yaml:14:5: app 'web' sets 'ci' but has no GitHub repository "
        "(add `github: owner/name`, or a github.com repo URL)",
        "conveyor.yaml:18:9: 'ci' of app 'api': expected `none` or {required: [...], timeout: 2h}",
    ]


def test_a_missing_or_wrong_private_key_file_is_a_problem(tmp_path: Path) -> None:
    text = BASE.replace("./github-app.pem", "./missing.pem")
    (message,) = problems(text, ENV)
    assert message.startswith("conveyor.yaml:7:38: private_key_file './missing.pem': no such file")
    (tmp_path / "github-app.pem").write_text("hello\n")
    (message,) = problems(BASE, ENV)
    assert message.startswith("conveyor.yaml:7:38: private_key_file './github-app.pem' is not usable")


def test_app_and_token_exclude_each_other(tmp_path: Path) -> None:
    (tmp_path / "github-app.pem").write_text(pem())
    text = BASE.replace("  reconcile_interval: 5m\n", "  token: ghp_x\n")
    (message,) = problems(text, ENV)
    assert message == "conveyor.yaml:6:3: 'github' in the top level: give either app or token, not both"
