"""The GitHub client against the stand-in: every request it makes is one GitHub's description allows.

Token and App authentication (the JWT verified with the App's public key, installation tokens cached
until a minute before they expire, then renewed), pagination, retries on 5xx and refused connections,
the primary and secondary rate limits, and refusals that are not retried.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from conveyor import __version__
from conveyor.config.resolved import Config, GitHubApp, GitHubConfig
from conveyor.github.client import GitHubClient, GitHubError, RetryLimits, github_client_for
from conveyor.github.reads import GitHubReads, GitHubUnavailable
from tests.github.conftest import APP_ID, TOKEN
from tests.github.standin import GitHubStandIn, Scripted
from tests.integration.harness import free_port

REPO = "octo-org/web"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
FAST = RetryLimits(attempts=4, backoff=0.05, max_backoff=0.2, max_wait=5.0, timeout=2.0)


_open: list[GitHubClient] = []


def connect(config: GitHubConfig, limits: RetryLimits = FAST) -> GitHubClient:
    """A client, closed when the test ends."""
    client = GitHubClient(config, limits=limits)
    _open.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def token_client(standin: GitHubStandIn, limits: RetryLimits = FAST) -> GitHubClient:
    return connect(GitHubConfig(api_url=standin.url, token=TOKEN), limits)


def app_client(standin: GitHubStandIn, private_key: str) -> GitHubClient:
    return connect(GitHubConfig(api_url=standin.url, app=GitHubApp(APP_ID, private_key)))


@pytest.fixture
def client(standin: GitHubStandIn) -> GitHubClient:
    return token_client(standin)


def test_it_is_what_the_intake_reads_through() -> None:
    client: GitHubReads = connect(GitHubConfig(token="t"))
    assert client is not None


def test_a_token_with_the_headers_github_asks_for(standin: GitHubStandIn, client: GitHubClient) -> None:
    standin.heads["main"] = SHA
    assert client.branch_head(REPO, "main") == SHA
    assert client.branch_head(REPO, "no-such-branch") is None
    [first, _] = standin.requests()
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.headers["Accept"] == "application/vnd.github+json"
    assert first.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert first.headers["User-Agent"] == f"conveyor/{__version__}"


def test_a_wrong_token_is_a_refusal_not_an_outage(standin: GitHubStandIn) -> None:
    client = connect(GitHubConfig(api_url=standin.url, token="ghp_wrong"))
    with pytest.raises(GitHubError) as refused:
        client.commit(REPO, SHA)
    assert refused.value.status == 401 and "Bad credentials" in str(refused.value)
    assert "ghp_wrong" not in str(refused.value)
    assert len(standin.requests()) == 1  # a token is not asked for again


def test_every_page_of_check_runs_statuses_and_workflow_runs(standin: GitHubStandIn, client: GitHubClient) -> None:
    standin.check_runs[SHA] = [
        {"id": i, "name": f"check-{i}", "status": "completed", "conclusion": "success"} for i in range(250)
    ]
    standin.commit_statuses[SHA] = [{"context": f"ci/{i}", "state": "success"} for i in range(130)]
    standin.workflow_runs[SHA] = [{"id": i, "name": "test", "conclusion": "success"} for i in range(3)]
    runs = client.check_runs(REPO, SHA)
    assert [r["name"] for r in runs] == [f"check-{i}" for i in range(250)]
    assert all(r["head_sha"] == SHA for r in runs)
    assert len(standin.requests("GET", "/check-runs")) == 3  # 100 a page, following Link: rel="next"
    assert [s["context"] for s in client.statuses(REPO, SHA)] == [f"ci/{i}" for i in range(130)]
    assert [r["id"] for r in client.workflow_runs(REPO, SHA)] == [0, 1, 2]
    assert standin.requests("GET", "/actions/runs")[0].query["head_sha"] == SHA


def test_compare_gathers_every_page_of_commits(standin: GitHubStandIn, client: GitHubClient) -> None:
    standin.compare_commits = 120
    comparison = client.compare(REPO, "a" * 40, SHA)
    assert len(comparison["commits"]) == 120
    assert comparison["html_url"] and "files" in comparison
    assert client.commit(REPO, SHA)["sha"] == SHA


def test_app_authentication_with_a_verified_jwt_and_a_cached_installation_token(
    standin: GitHubStandIn, app_key: tuple[str, str]
) -> None:
    client = app_client(standin, app_key[0])
    for _ in range(3):
        client.commit(REPO, SHA)
    # one installation lookup and one token for three requests, each signed by the App and verified
    assert len(standin.requests("GET", "/installation")) == 1
    assert len(standin.requests("POST", "/access_tokens")) == 1
    [claims] = standin.jwts[:1]
    now = time.time()
    assert claims["iss"] == str(APP_ID)
    assert now - 65 <= claims["iat"] <= now - 55  # a minute in the past, against clock drift
    assert claims["exp"] - claims["iat"] <= 600
    [token] = standin.issued
    assert all(r.headers["Authorization"] == f"Bearer {token}" for r in standin.requests("GET", "/commits/"))


def test_an_installation_token_is_renewed_a_minute_before_it_expires(
    standin: GitHubStandIn, app_key: tuple[str, str]
) -> None:
    standin.token_lifetime = 61.5  # good for 1.5 s more than the minute conveyor keeps in hand
    client = app_client(standin, app_key[0])
    client.commit(REPO, SHA)
    client.commit(REPO, SHA)
    assert len(standin.requests("POST", "/access_tokens")) == 1
    time.sleep(1.6)
    client.commit(REPO, SHA)
    assert len(standin.requests("POST", "/access_tokens")) == 2
    assert len(standin.requests("GET", "/installation")) == 1  # the installation is remembered
    assert all(r.status == 200 for r in standin.requests("GET", "/commits/"))


def test_a_revoked_installation_token_is_replaced_once(standin: GitHubStandIn, app_key: tuple[str, str]) -> None:
    client = app_client(standin, app_key[0])
    client.commit(REPO, SHA)
    standin.revoke_tokens()
    assert client.commit(REPO, SHA)["sha"] == SHA
    assert [r.status for r in standin.requests("GET", "/commits/")] == [200, 401, 200]
    assert len(standin.requests("POST", "/access_tokens")) == 2


def test_an_app_with_another_key_is_refused(standin: GitHubStandIn) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    client = app_client(standin, other.decode())
    with pytest.raises(GitHubError) as refused:
        client.commit(REPO, SHA)
    assert refused.value.status == 401
    assert standin.jwts == []


def test_threads_share_one_installation_token(standin: GitHubStandIn, app_key: tuple[str, str]) -> None:
    client = app_client(standin, app_key[0])
    errors: list[BaseException] = []

    def read() -> None:
        try:
            client.commit(REPO, SHA)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(standin.requests("POST", "/access_tokens")) == 1


def test_5xx_answers_are_retried_with_backoff(standin: GitHubStandIn, client: GitHubClient) -> None:
    standin.script(Scripted(502, body={"message": "Server Error"}), Scripted(503, body={"message": "Unavailable"}))
    assert client.commit(REPO, SHA)["sha"] == SHA
    assert [r.status for r in standin.requests()] == [502, 503, 200]


def test_a_lasting_outage_is_unavailable_after_the_attempts(standin: GitHubStandIn, client: GitHubClient) -> None:
    standin.outage_until = time.monotonic() + 60
    started = time.monotonic()
    with pytest.raises(GitHubUnavailable, match="HTTP 502"):
        client.commit(REPO, SHA)
    assert len(standin.requests()) == FAST.attempts
    assert time.monotonic() - started < 2


def test_a_refused_connection_is_unavailable_after_the_attempts() -> None:
    client = connect(GitHubConfig(api_url=f"http://127.0.0.1:{free_port()}", token=TOKEN))
    with pytest.raises(GitHubUnavailable, match="cannot reach"):
        client.commit(REPO, SHA)


def test_a_slow_github_is_a_timeout_then_unavailable(standin: GitHubStandIn) -> None:
    standin.delay = 1.0
    client = token_client(standin, RetryLimits(attempts=2, backoff=0.01, timeout=0.3))
    started = time.monotonic()
    with pytest.raises(GitHubUnavailable):
        client.commit(REPO, SHA)
    assert time.monotonic() - started < 1.5


def test_the_primary_rate_limit_waits_for_its_reset(standin: GitHubStandIn, client: GitHubClient) -> None:
    reset = time.time() + 1.2
    limited = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset), "X-RateLimit-Limit": "5000"}
    standin.script(Scripted(403, limited, {"message": "API rate limit exceeded for installation ID 4242."}))
    assert client.commit(REPO, SHA)["sha"] == SHA
    [refused, answered] = standin.requests()
    assert refused.status == 403 and answered.status == 200
    assert answered.at - refused.at >= 0.9


def test_none_left_makes_the_next_request_wait_for_the_reset(standin: GitHubStandIn, client: GitHubClient) -> None:
    standin.rate_remaining, standin.rate_reset = 0, time.time() + 1.5
    client.commit(REPO, SHA)
    standin.rate_remaining = None
    client.commit(REPO, SHA)
    _, second = standin.requests()
    # it waited for the reset (GitHub's whole Unix seconds) instead of being refused; on a busy machine the
    # first request may itself take most of the time to the reset, so the reset is what is compared with
    second_sent = time.time() - (time.monotonic() - second.at)
    assert second_sent >= int(standin.rate_reset) - 0.05


def test_a_reset_further_than_the_longest_wait_is_unavailable_at_once(
    standin: GitHubStandIn, client: GitHubClient
) -> None:
    standin.rate_remaining, standin.rate_reset = 0, time.time() + 3600
    client.commit(REPO, SHA)
    started = time.monotonic()
    with pytest.raises(GitHubUnavailable, match="rate limit"):
        client.commit(REPO, SHA)
    assert time.monotonic() - started < 0.5
    assert len(standin.requests()) == 1  # not even asked


@pytest.mark.parametrize("status", [403, 429])
def test_the_secondary_rate_limit_waits_retry_after(standin: GitHubStandIn, client: GitHubClient, status: int) -> None:
    message = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
    standin.script(Scripted(status, {"Retry-After": "1"}, {"message": message}))
    assert client.commit(REPO, SHA)["sha"] == SHA
    [limited, answered] = standin.requests()
    assert limited.status == status and answered.at - limited.at >= 0.9


def test_a_retry_after_longer_than_the_longest_wait_is_unavailable(
    standin: GitHubStandIn, client: GitHubClient
) -> None:
    standin.script(Scripted(429, {"Retry-After": "600"}, {"message": "secondary rate limit"}))
    with pytest.raises(GitHubUnavailable, match="rate limited"):
        client.commit(REPO, SHA)


def test_a_forbidden_answer_that_is_no_rate_limit_is_a_refusal(standin: GitHubStandIn, client: GitHubClient) -> None:
    standin.script(Scripted(403, {}, {"message": "Resource not accessible by integration"}))
    with pytest.raises(GitHubError, match="Resource not accessible") as refused:
        client.commit(REPO, SHA)
    assert refused.value.status == 403
    assert len(standin.requests()) == 1


def test_no_client_without_a_github_section_or_credentials(tmp_path: object) -> None:
    from pathlib import Path

    base = Config(Path("c.yaml"), ("production",), {}, {}, {}, Path("."), "sqlite://")
    assert github_client_for(base) is None
    from dataclasses import replace

    assert github_client_for(replace(base, github=GitHubConfig(webhook_secret="s"))) is None
    client = github_client_for(replace(base, github=GitHubConfig(token="t")))
    assert isinstance(client, GitHubClient)
    client.close()


def test_an_app_key_that_is_no_pem_rsa_key_is_named_so(app_key: tuple[str, str]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from conveyor.github.auth import app_private_key

    assert app_private_key(app_key[0]).key_size == 2048
    with pytest.raises(ValueError, match="not a PEM private key"):
        app_private_key("-----BEGIN RSA PRIVATE KEY-----\nnot base64\n-----END RSA PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="not a PEM private key"):
        app_private_key(app_key[1])  # the public half
    encrypted = serialization.load_pem_private_key(app_key[0].encode(), None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    with pytest.raises(ValueError, match="encrypted"):
        app_private_key(encrypted.decode())
    elliptic = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="must be an RSA key"):
        app_private_key(elliptic.decode())


def test_an_answer_that_is_not_json_is_unavailable_not_a_crash(standin: GitHubStandIn, client: GitHubClient) -> None:
    standin.script(Scripted(200, body=None), Scripted(200, body=["not", "an", "object"]))
    with pytest.raises(GitHubUnavailable, match="other than JSON"):
        client.commit(REPO, SHA)
    with pytest.raises(GitHubUnavailable, match="other than an object"):
        client.commit(REPO, SHA)
