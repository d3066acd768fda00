"""What the intake reads from GitHub's API, as a seam: the client implements it, tests fake it.

Every method answers GitHub's own JSON objects (the REST API's shapes, which are also the objects inside
webhook payloads: a check run, a commit status, a workflow run), so one parser serves a webhook and a
reconciliation read alike. A method raises :class:`GitHubUnavailable` when GitHub cannot answer now
(an outage, a rate limit longer than the caller will wait); the caller tries again at its next turn. It
raises :class:`GitHubError` when GitHub refused the request itself.
"""

from __future__ import annotations

from typing import Any, Protocol

Json = dict[str, Any]


class GitHubUnavailable(Exception):
    """GitHub did not answer usefully (5xx after retries, connection refused, rate limited for long)."""


class GitHubError(Exception):
    """GitHub refused a request (a 404 for a repository the token cannot see, a 422): asking again will not
    help. ``status`` is its HTTP status, ``message`` GitHub's own words."""

    def __init__(self, status: int, message: str, what: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"GitHub answered HTTP {status} to {what}{': ' + message if message else ''}")


class GitHubReads(Protocol):
    def branch_head(self, repo: str, branch: str) -> str | None:
        """The sha at the tip of ``branch`` of ``repo`` ("owner/name"), or None if there is no such branch."""
        ...

    def commit(self, repo: str, sha: str) -> Json:
        """One commit (``GET /repos/{owner}/{repo}/commits/{ref}``): its message, author and files."""
        ...

    def check_runs(self, repo: str, sha: str) -> list[Json]:
        """Every check run for ``sha`` (``GET .../commits/{ref}/check-runs``, all pages)."""
        ...

    def statuses(self, repo: str, sha: str) -> list[Json]:
        """The latest status per context for ``sha`` (``GET .../commits/{ref}/status``, ``statuses``)."""
        ...

    def workflow_runs(self, repo: str, sha: str) -> list[Json]:
        """The Actions workflow runs for ``sha`` (``GET .../actions/runs?head_sha=``)."""
        ...

    def compare(self, repo: str, base: str, head: str) -> Json:
        """``GET .../compare/{base}...{head}``: its ``commits``, ``files`` and ``html_url``."""
        ...
