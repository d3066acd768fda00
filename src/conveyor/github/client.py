"""The one client conveyor talks to GitHub's REST API with: reads for the intake, writes for deployments.

Every request carries ``Accept: application/vnd.github+json``, ``X-GitHub-Api-Version: 2022-11-28``, a
``User-Agent: conveyor/<version>`` and the credentials of :mod:`conveyor.github.auth`. It is sync (it runs
on worker, chore and notifier threads) and safe to share between threads.

GitHub being slow, down or busy slows conveyor down and never stops it:

- a ``5xx`` answer, a refused connection or a timeout is tried again, ``attempts`` times in all, after a
  backoff that doubles from ``backoff`` up to ``max_backoff``, each shortened at random by up to half
  (so many conveyors coming back do not hit GitHub at one instant);
- the primary rate limit: an answer with ``X-RateLimit-Remaining: 0`` makes every request of this client
  wait for ``X-RateLimit-Reset``; a ``403``/``429`` that says so is tried again after it;
- the secondary rate limit: a ``403``/``429`` with ``Retry-After`` is tried again after that many seconds
  (one that says "secondary rate limit" without it, after a minute, as GitHub asks);
- a wait longer than ``max_wait`` in all is not waited: the call raises :class:`GitHubUnavailable` at once,
  and its caller (a notifier delivery, a reconciliation turn) tries again at its next turn.

So a call ends within about ``attempts * timeout`` plus ``max_wait``. Errors, as a tree:

- :class:`~conveyor.github.reads.GitHubUnavailable`: GitHub could not answer now; later may work.
- :class:`GitHubError`: GitHub answered with a refusal (``404``, ``422``, a ``403`` that is not a rate
  limit) that asking again will not change; ``status`` and GitHub's ``message`` say which. Credentials
  GitHub refused (a token, an App's JWT, an App not installed on the repository) are a ``401`` refusal,
  after one try with a new installation token.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from conveyor import __version__
from conveyor.config.resolved import Config, GitHubConfig
from conveyor.github.auth import AppAuth, Credentials, GitHubAuthError, TokenAuth, github_message
from conveyor.github.reads import GitHubError, GitHubUnavailable, Json

__all__ = ["API_VERSION", "GitHubClient", "GitHubError", "RetryLimits", "github_client_for"]

API_VERSION = "2022-11-28"
SECONDARY_LIMIT_WAIT = 60.0  # seconds, when a secondary rate limit answer has no Retry-After
PER_PAGE = 100  # GitHub's largest page
MAX_PAGES = 50  # 5,000 items: more check runs than any commit has; a loop in Link headers ends here


@dataclass(frozen=True)
class RetryLimits:
    """How patient one call is with GitHub (see the module docstring)."""

    attempts: int = 4  # tries of one request on 5xx answers and connection errors
    backoff: float = 0.5  # seconds before the second try; doubles
    max_backoff: float = 8.0
    max_wait: float = 60.0  # the longest a call waits for rate limits before GitHubUnavailable
    timeout: float = 10.0  # seconds for one HTTP request


class GitHubClient:
    """GitHub's REST API at ``config.api_url`` with ``config``'s credentials. ``transport``, ``clock``
    (Unix seconds), ``sleep`` and ``rand`` are for tests."""

    def __init__(
        self,
        config: GitHubConfig,
        *,
        limits: RetryLimits | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.api_url = config.api_url.rstrip("/")
        self.host = urlsplit(self.api_url).netloc
        self.limits = limits or RetryLimits()
        self.clock, self.sleep, self.rand = clock, sleep, rand
        self.credentials = _credentials(config, clock)
        self._http = httpx.Client(
            base_url=self.api_url,
            timeout=self.limits.timeout,
            transport=transport,
            follow_redirects=True,  # GitHub redirects renamed repositories (301 then 307 for writes)
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": f"conveyor/{__version__}",
            },
        )
        self._lock = threading.Lock()
        self._blocked_until = 0.0  # the primary rate limit's reset, once GitHub said none are left

    def close(self) -> None:
        self._http.close()

    # --- what the intake reads (conveyor.github.reads.GitHubReads) ------------------------------------------

    def branch_head(self, repo: str, branch: str) -> str | None:
        try:
            body = self.get(repo, f"/repos/{repo}/branches/{_quoted(branch)}")
        except GitHubError as exc:
            if exc.status == 404:
                return None
            raise
        return str(body["commit"]["sha"])

    def commit(self, repo: str, sha: str) -> Json:
        return self.get(repo, f"/repos/{repo}/commits/{_quoted(sha)}")

    def check_runs(self, repo: str, sha: str) -> list[Json]:
        return self.pages(repo, f"/repos/{repo}/commits/{_quoted(sha)}/check-runs", "check_runs")

    def statuses(self, repo: str, sha: str) -> list[Json]:
        return self.pages(repo, f"/repos/{repo}/commits/{_quoted(sha)}/status", "statuses")

    def workflow_runs(self, repo: str, sha: str) -> list[Json]:
        return self.pages(repo, f"/repos/{repo}/actions/runs", "workflow_runs", {"head_sha": sha})

    def compare(self, repo: str, base: str, head: str) -> Json:
        """The comparison with every page of its ``commits`` (``files`` come with the first page only)."""
        path = f"/repos/{repo}/compare/{_quoted(base)}...{_quoted(head)}"
        first: Json | None = None
        for body in self._each_page(repo, path, {}):
            if first is None:
                first = body
            else:
                first["commits"] = [*first.get("commits", []), *body.get("commits", [])]
        assert first is not None
        return first

    # --- deployments -------------------------------------------------------------------------------------

    def create_deployment(self, repo: str, body: Mapping[str, Any]) -> Json:
        return self.post(repo, f"/repos/{repo}/deployments", body)

    def deployments(self, repo: str, *, sha: str, environment: str) -> list[Json]:
        """The deployments of ``sha`` to ``environment``, newest first (all pages)."""
        return self.pages(repo, f"/repos/{repo}/deployments", None, {"sha": sha, "environment": environment})

    def create_deployment_status(self, repo: str, deployment_id: int, body: Mapping[str, Any]) -> Json:
        return self.post(repo, f"/repos/{repo}/deployments/{deployment_id}/statuses", body)

    # --- the plumbing ------------------------------------------------------------------------------------------

    def get(self, repo: str | None, path: str, params: Mapping[str, Any] | None = None) -> Json:
        return _object(self.request("GET", path, repo=repo, params=params), f"GET {path}")

    def post(self, repo: str | None, path: str, body: Mapping[str, Any]) -> Json:
        return _object(self.request("POST", path, repo=repo, json=body), f"POST {path}")

    def pages(self, repo: str, path: str, key: str | None, params: Mapping[str, Any] | None = None) -> list[Json]:
        """Every item of a listing, following ``Link: rel="next"``; ``key`` names the list inside each page
        (``check_runs``), or None when a page is the list itself."""
        items: list[Json] = []
        for body in self._each_page(repo, path, params or {}):
            found = body.get(key) if key is not None and isinstance(body, dict) else body
            if not isinstance(found, list):
                raise GitHubUnavailable(f"GitHub answered GET {path} without a list of {key or 'items'}")
            items.extend(found)
        return items

    def _each_page(self, repo: str, path: str, params: Mapping[str, Any]) -> Any:
        url: str | None = path
        query: Mapping[str, Any] | None = {**params, "per_page": PER_PAGE}
        for _ in range(MAX_PAGES):
            if url is None:
                return
            response = self.request("GET", url, repo=repo, params=query)
            yield _parsed(response, f"GET {path}")
            url = response.links.get("next", {}).get("url")
            query = None  # the next link carries the query

    def request(
        self,
        method: str,
        path: str,
        *,
        repo: str | None,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """One authenticated request about ``repo``, retried and rate limited; a ``2xx`` answer, or raises
        :class:`GitHubError` (a refusal) or :class:`GitHubUnavailable` (try again later)."""
        what = f"{method} {path}"
        for renewed in (False, True):
            try:
                authorization = self.credentials.authorization(repo, self._send_plain)
            except GitHubAuthError as exc:
                raise GitHubError(401, str(exc), what) from None
            response = self._send(method, path, authorization, params=params, json=json)
            # an installation token revoked or expired early: once more with a new one
            if response.status_code == 401 and not renewed and self.credentials.forget(repo):
                continue
            break
        if response.is_success:
            return response
        raise GitHubError(response.status_code, github_message(response), what)

    def _send_plain(self, method: str, path: str, authorization: str) -> httpx.Response:
        return self._send(method, path, authorization)

    def _send(
        self,
        method: str,
        path: str,
        authorization: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Send until GitHub answers something other than a 5xx or a rate limit, within the limits."""
        limits = self.limits
        failures = 0
        waited = 0.0
        while True:
            waited += self._wait_for_primary_limit(waited)
            try:
                response = self._http.request(
                    method, path, params=params, json=json, headers={"Authorization": authorization}
                )
            except httpx.TransportError as exc:
                failures += 1
                if failures >= limits.attempts:
                    reason = str(exc) or type(exc).__name__
                    raise GitHubUnavailable(f"cannot reach {self.host} ({failures} attempts): {reason}") from None
                self.sleep(self._backoff(failures))
                continue
            self._note_primary_limit(response)
            if response.status_code >= 500:
                failures += 1
                if failures >= limits.attempts:
                    raise GitHubUnavailable(
                        f"HTTP {response.status_code} from {self.host} to {method} {path} ({failures} attempts)"
                    )
                self.sleep(self._backoff(failures))
                continue
            wait = self._rate_limit_wait(response)
            if wait is None:
                return response
            if waited + wait > limits.max_wait:
                raise GitHubUnavailable(
                    f"rate limited by {self.host} for {wait:.0f}s more (waits at most {limits.max_wait:g}s)"
                )
            self.sleep(wait)
            waited += wait

    def _backoff(self, failures: int) -> float:
        delay = min(self.limits.max_backoff, self.limits.backoff * 2.0 ** (failures - 1))
        return delay * (1.0 - 0.5 * self.rand())

    def _rate_limit_wait(self, response: httpx.Response) -> float | None:
        """Seconds to wait before asking again, when ``response`` is a rate limit; None when it is not."""
        if response.status_code not in (403, 429):
            return None
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return SECONDARY_LIMIT_WAIT
        if response.headers.get("X-RateLimit-Remaining") == "0":
            return max(0.0, _reset(response, self.clock()) - self.clock())
        if response.status_code == 429 or "rate limit" in github_message(response).lower():
            return SECONDARY_LIMIT_WAIT
        return None  # a refusal: no permission, say

    def _note_primary_limit(self, response: httpx.Response) -> None:
        if response.headers.get("X-RateLimit-Remaining") == "0":
            with self._lock:
                self._blocked_until = max(self._blocked_until, _reset(response, self.clock()))

    def _wait_for_primary_limit(self, waited: float) -> float:
        """Wait until the primary rate limit resets, if GitHub said none are left; returns the seconds."""
        with self._lock:
            left = self._blocked_until - self.clock()
        if left <= 0:
            return 0.0
        if waited + left > self.limits.max_wait:
            raise GitHubUnavailable(
                f"GitHub's rate limit at {self.host} resets in {left:.0f}s (waits at most {self.limits.max_wait:g}s)"
            )
        self.sleep(left)
        return left


def _credentials(config: GitHubConfig, clock: Callable[[], float]) -> Credentials:
    if config.app is not None:
        return AppAuth(config.app, clock)
    if config.token:
        return TokenAuth(config.token)
    raise ValueError("github: needs a token or an app to talk to GitHub's API")


def _parsed(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise GitHubUnavailable(f"GitHub answered {what} with something other than JSON") from None


def _object(response: httpx.Response, what: str) -> Json:
    body = _parsed(response, what)
    if not isinstance(body, dict):
        raise GitHubUnavailable(f"GitHub answered {what} with something other than an object")
    return body


def _reset(response: httpx.Response, now: float) -> float:
    """When the primary rate limit resets (Unix seconds); a minute from now when GitHub did not say."""
    try:
        return float(response.headers["X-RateLimit-Reset"])
    except (KeyError, ValueError):
        return now + SECONDARY_LIMIT_WAIT


def _quoted(part: str) -> str:
    """A branch or ref in a path: ``/`` inside a branch name is kept (GitHub takes it), the rest escaped."""
    return quote(part, safe="/")


def github_client_for(config: Config, *, limits: RetryLimits | None = None) -> GitHubClient | None:
    """The client for ``config``'s ``github:`` section, or None when there is none (or it has no
    credentials: only webhooks are checked then)."""
    github = config.github
    if github is None or (github.app is None and not github.token):
        return None
    return GitHubClient(github, limits=limits)
