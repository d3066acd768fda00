"""Fixtures of the GitHub tests: GitHub's OpenAPI description (loaded once) and a stand-in per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.github.description import GitHubDescription, description_path
from tests.github.standin import GitHubStandIn

TOKEN = "ghp_conveyortesttoken0000000000000000000"
APP_ID = 12345


@pytest.fixture(scope="session")
def github_description() -> GitHubDescription:
    return GitHubDescription(description_path())


@pytest.fixture(scope="session")
def app_key() -> tuple[str, str]:
    """A GitHub App's key pair as PEM text: (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
def standin(github_description: GitHubDescription, app_key: tuple[str, str]) -> Iterator[GitHubStandIn]:
    """A stand-in that takes the token ``TOKEN`` and the App ``APP_ID``; it must see no invalid request."""
    server = GitHubStandIn(github_description, token=TOKEN, app_id=APP_ID, public_key=app_key[1]).start()
    yield server
    server.close()
    assert server.problems == [], server.problems
