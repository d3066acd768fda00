"""A GitHub API stand-in on loopback, answering GitHub-shaped JSON for the reads the intake makes, and a
small reader over HTTP that the intake takes as its :class:`~conveyor.github.reads.GitHubReads`.

The stand-in holds what a test put there (branch heads, commits, check runs, statuses, workflow runs) and
records every request. The reader is a test double of the REST client, kept to the few lines needed to
speak HTTP to the stand-in; the real client (and its contract tests) lives with :mod:`conveyor.github`.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from conveyor.github.reads import GitHubUnavailable, Json


@dataclass
class GitHubState:
    heads: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, branch) -> sha
    commits: dict[str, Json] = field(default_factory=dict)  # sha -> commit object
    parents: dict[str, str] = field(default_factory=dict)  # sha -> parent sha
    check_runs: dict[str, list[Json]] = field(default_factory=dict)
    statuses: dict[str, list[Json]] = field(default_factory=dict)
    workflow_runs: dict[str, list[Json]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    down: bool = False

    def add_commit(self, repo: str, sha: str, parent: str | None, message: str, files: list[str], login: str) -> None:
        self.commits[sha] = {
            "sha": sha,
            "html_url": f"https://github.com/{repo}/commit/{sha}",
            "commit": {"message": message, "author": {"name": "A User", "email": "user@example.org"}},
            "author": {"login": login},
            "files": [{"filename": f} for f in files],
        }
        if parent:
            self.parents[sha] = parent

    def compare(self, repo: str, base: str, head: str) -> Json:
        chain, sha = [], head
        while sha != base and sha in self.commits:
            chain.append(self.commits[sha])
            sha = self.parents.get(sha, base)
        chain.reverse()
        files = [f for c in chain for f in c["files"]]
        return {"html_url": f"https://github.com/{repo}/compare/{base}...{head}", "commits": chain, "files": files}


ROUTES = [
    (re.compile(r"^/repos/([^/]+/[^/]+)/branches/(.+)$"), "branch"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)/check-runs$"), "check_runs"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)/status$"), "status"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)$"), "commit"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/actions/runs$"), "runs"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/compare/([0-9a-f]+)\.\.\.([0-9a-f]+)$"), "compare"),
]


class StandIn:
    def __init__(self) -> None:
        self.state = GitHubState()
        state = self.state

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                state.requests.append(self.path)
                if state.down:
                    return self._send(503, {"message": "unavailable"})
                for pattern, kind in ROUTES:
                    m = pattern.match(path)
                    if m:
                        return self._send(*answer(state, kind, m.groups(), query))
                self._send(404, {"message": "Not Found"})

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def answer(state: GitHubState, kind: str, groups: tuple[str, ...], query: str) -> tuple[int, Any]:
    repo = groups[0]
    if kind == "branch":
        sha = state.heads.get((repo, groups[1]))
        return (
            (404, {"message": "Branch not found"})
            if sha is None
            else (200, {"name": groups[1], "commit": {"sha": sha}})
        )
    if kind == "commit":
        commit = state.commits.get(groups[1])
        return (404, {"message": "No commit found"}) if commit is None else (200, commit)
    if kind == "check_runs":
        runs = state.check_runs.get(groups[1], [])
        return 200, {"total_count": len(runs), "check_runs": runs}
    if kind == "status":
        statuses = state.statuses.get(groups[1], [])
        return 200, {"state": "pending", "sha": groups[1], "total_count": len(statuses), "statuses": statuses}
    if kind == "runs":
        sha = dict(p.partition("=")[::2] for p in query.split("&") if p).get("head_sha", "")
        runs = state.workflow_runs.get(sha, [])
        return 200, {"total_count": len(runs), "workflow_runs": runs}
    return 200, state.compare(repo, groups[1], groups[2])


class LoopbackReads:
    """GitHubReads over HTTP against the stand-in (or any server answering GitHub's shapes)."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10, trust_env=False)

    def _get(self, path: str, **params: str) -> Any:
        try:
            response = self.client.get(path, params=params)
        except httpx.TransportError as exc:
            raise GitHubUnavailable(str(exc)) from exc
        if response.status_code >= 500:
            raise GitHubUnavailable(f"{response.status_code} from {path}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def branch_head(self, repo: str, branch: str) -> str | None:
        found = self._get(f"/repos/{repo}/branches/{branch}")
        return None if found is None else str(found["commit"]["sha"])

    def commit(self, repo: str, sha: str) -> Json:
        found: Json = self._get(f"/repos/{repo}/commits/{sha}")
        return found

    def check_runs(self, repo: str, sha: str) -> list[Json]:
        runs: list[Json] = self._get(f"/repos/{repo}/commits/{sha}/check-runs")["check_runs"]
        return runs

    def statuses(self, repo: str, sha: str) -> list[Json]:
        found: list[Json] = self._get(f"/repos/{repo}/commits/{sha}/status")["statuses"]
        return found

    def workflow_runs(self, repo: str, sha: str) -> list[Json]:
        runs: list[Json] = self._get(f"/repos/{repo}/actions/runs", head_sha=sha)["workflow_runs"]
        return runs

    def compare(self, repo: str, base: str, head: str) -> Json:
        found: Json = self._get(f"/repos/{repo}/compare/{base}...{head}")
        return found

    def close(self) -> None:
        self.client.close()


def check_run(name: str, sha: str, conclusion: str | None, url: str = "https://ci.example.org/run/1") -> Json:
    return {
        "name": name,
        "head_sha": sha,
        "status": "completed" if conclusion else "in_progress",
        "conclusion": conclusion,
        "details_url": url,
        "started_at": "2026-11-29T08:00:00Z",
        "completed_at": "2026-11-29T08:01:00Z" if conclusion else None,
    }
