"""A stand-in for GitHub's REST API on 127.0.0.1, holding conveyor to GitHub's own description.

Each request is checked against the OpenAPI description (:mod:`tests.github.description`) and for the
headers GitHub asks every client for; what is wrong is kept in ``problems`` (a test asserts it stays
empty) and answered ``400``. Each answer is the description's own example for the operation, with the
fields a test looks at filled in (ids, shas, states).

It authenticates like GitHub: a token given to it, or a GitHub App, whose JWT it verifies with the App's
public key (RS256, ``iss``, ``iat`` not in the future, at most ten minutes to ``exp``) and whose
installation tokens it issues with an expiry and refuses once expired or revoked. It misbehaves on
demand: an outage (``502`` until a time), a queue of scripted answers (rate limits, ``5xx``) for the
next requests, a delay before each answer.

A repository a test maps to a real git repository (``repositories["owner/name"] = path``) is answered from
it: a branch's head is the branch's real sha, a commit its real message, author, parents and files, a
comparison the real commits and files between two shas (``git`` with argv lists, read at each request, so
a commit made by the test is on "GitHub" at once). Authors' GitHub logins come from ``logins`` (email ->
login); an email not there has no GitHub account (``author: null``, as GitHub answers).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt

from tests.github.description import GitHubDescription

INSTALLATION_ID = 4242


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int  # what the stand-in answered
    at: float  # time.monotonic() when it answered


@dataclass
class Scripted:
    """One answer given instead of the real one (to the next request whose path contains ``path``)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    path: str = ""


@dataclass
class GitHubDeployment:
    id: int
    repo: str
    body: dict[str, Any]
    statuses: list[dict[str, Any]] = field(default_factory=list)


class GitHubStandIn:
    def __init__(
        self,
        description: GitHubDescription,
        *,
        token: str | None = None,
        app_id: int | None = None,
        public_key: str | None = None,
        token_lifetime: float = 3600.0,
    ) -> None:
        self.description = description
        self.token, self.app_id, self.public_key = token, app_id, public_key
        self.token_lifetime = token_lifetime
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.problems: list[str] = []
        self.scripted: list[Scripted] = []
        self.outage_until = 0.0  # time.monotonic(): 502 for every request until then
        self.delay = 0.0
        self.issued: dict[str, float] = {}  # installation token -> expires at (Unix seconds)
        self.jwts: list[dict[str, Any]] = []  # the verified claims of every App JWT
        self.heads: dict[str, str] = {}  # branch -> sha
        self.check_runs: dict[str, list[dict[str, Any]]] = {}  # sha -> check runs (name, status, conclusion)
        self.commit_statuses: dict[str, list[dict[str, Any]]] = {}
        self.workflow_runs: dict[str, list[dict[str, Any]]] = {}
        self.compare_commits = 1
        self.repositories: dict[str, Path] = {}  # "owner/name" -> a real git repository answering for it
        self.logins: dict[str, str] = {}  # a commit author's email -> their GitHub login
        self.deployments: list[GitHubDeployment] = []
        self.rate_remaining: int | None = None  # sent as X-RateLimit-Remaining when set
        self.rate_reset = 0.0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                standin._handle(self)

            def do_POST(self) -> None:
                standin._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="github-standin", daemon=True)

    def start(self) -> GitHubStandIn:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- what a test looks at ------------------------------------------------------------------------------

    def requests(self, method: str | None = None, contains: str = "") -> list[Received]:
        with self.lock:
            return [r for r in self.received if (method is None or r.method == method) and contains in r.path]

    def revoke_tokens(self) -> None:
        with self.lock:
            self.issued.clear()

    def script(self, *answers: Scripted) -> None:
        with self.lock:
            self.scripted.extend(answers)

    def timeline(self) -> list[tuple[str, str, str]]:
        """(environment, ref, state) of every deployment status posted, in the order they arrived;
        state ``created`` for the deployment's creation."""
        with self.lock:
            events = [(r.at, r) for r in self.received if r.method == "POST" and r.status == 201]
        by_id = {d.id: d for d in self.deployments}
        out: list[tuple[str, str, str]] = []
        for _, r in sorted(events, key=lambda e: e[0]):
            if r.path.endswith("/deployments"):
                out.append((r.body["environment"], r.body["ref"], "created"))
            elif "/statuses" in r.path:
                d = by_id[int(r.path.split("/")[-2])]
                out.append((d.body["environment"], d.body["ref"], r.body["state"]))
        return out

    # --- serving ---------------------------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        headers = {k: v for k, v in h.headers.items()}
        status, answer_headers, body = self._answer(h.command, parts.path, query, headers, raw)
        if self.delay:
            time.sleep(self.delay)
        data = json.dumps(body).encode() if body is not None else b""
        with self.lock:  # recorded before the answer leaves: a client that has it finds it recorded
            self.received.append(
                Received(
                    h.command,
                    parts.path,
                    dict(query),
                    headers,
                    json.loads(raw) if raw else None,
                    status,
                    time.monotonic(),
                )
            )
        try:
            h.send_response(status)
            for name, value in answer_headers.items():
                h.send_header(name, value)
            h.send_header("Content-Type", "application/json; charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up (a timeout test)

    def _answer(
        self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        problems = self.description.problems(method, path, query, list(headers.items()), raw)
        problems += _header_problems(method, path, headers)
        if problems:
            with self.lock:
                self.problems.extend(problems)
            return 400, {}, {"message": "; ".join(problems)}
        if time.monotonic() < self.outage_until:
            return 502, {}, {"message": "Server Error"}
        with self.lock:
            scripted = next((s for s in self.scripted if s.path in path), None)
            if scripted is not None:
                self.scripted.remove(scripted)
        if scripted is not None:
            return scripted.status, scripted.headers, scripted.body
        refused = self._authenticate(path, headers.get("Authorization", ""))
        if refused is not None:
            return 401, {}, {"message": refused, "documentation_url": "https://docs.github.com/rest"}
        template = self.description.template(path)
        assert template is not None  # the description check above found it
        route = ROUTES.get((method, template))
        if route is None:
            return 404, {}, {"message": "Not Found (the stand-in does not serve this)"}
        status, extra, body = route(self, path.split("/"), dict(query), json.loads(raw) if raw else None, template)
        if self.rate_remaining is not None:
            extra = {
                "X-RateLimit-Limit": "5000",
                "X-RateLimit-Remaining": str(self.rate_remaining),
                "X-RateLimit-Reset": str(int(self.rate_reset)),
                **extra,
            }
        return status, extra, body

    def _authenticate(self, path: str, authorization: str) -> str | None:
        """None when ``authorization`` may make this request, else why not."""
        scheme, _, credential = authorization.partition(" ")
        if scheme not in ("Bearer", "token") or not credential:
            return "Requires authentication"
        app_route = path.startswith("/app/") or path.endswith("/installation")
        if app_route:
            return self._verify_jwt(credential)
        if self.token is not None and secrets.compare_digest(credential, self.token):
            return None
        with self.lock:
            expires = self.issued.get(credential)
        if expires is None or expires <= time.time():
            return "Bad credentials"
        return None

    def _verify_jwt(self, token: str) -> str | None:
        if self.public_key is None:
            return "A JSON web token could not be decoded"
        try:
            claims = jwt.decode(
                token, self.public_key, algorithms=["RS256"], options={"require": ["iat", "exp", "iss"]}, leeway=0
            )
        except jwt.PyJWTError as exc:
            return f"A JSON web token could not be decoded: {exc}"
        now = time.time()
        if claims["iss"] != str(self.app_id):
            return f"'Issuer' claim ('iss') must be the App's id, not {claims['iss']!r}"
        if claims["iat"] > now + 1:
            return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
        if claims["exp"] - claims["iat"] > 600:
            return "'Expiration time' claim ('exp') is too far in the future"
        with self.lock:
            self.jwts.append(claims)
        return None

    # --- routes: each answers from the description's example --------------------------------------------

    def _installation(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        example = self.description.example(template, "GET", 200)
        example["id"] = INSTALLATION_ID
        return 200, {}, example

    def _access_token(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        if int(parts[3]) != INSTALLATION_ID:
            return 404, {}, {"message": "Not Found"}
        example = self.description.example(template, "POST", 201)
        token = "ghs_" + secrets.token_hex(16)
        expires = time.time() + self.token_lifetime
        with self.lock:
            self.issued[token] = expires
        example["token"] = token
        example["expires_at"] = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 201, {}, example

    def _branch(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        branch = "/".join(parts[5:])
        git = self._git(parts)
        sha = self.heads.get(branch) if git is None else git.branch_head(branch)
        if sha is None:
            return 404, {}, {"message": "Branch not found"}
        example = self.description.example(template, "GET", 200)
        example["name"] = branch
        example["commit"]["sha"] = sha
        if git is not None:
            example["commit"] = self._commit_json(example["commit"], git, sha)
        return 200, {}, example

    def _commit(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        example = self.description.example(template, "GET", 200)
        git = self._git(parts)
        if git is None:
            example["sha"] = parts[5]
            return 200, {}, example
        sha = git.resolve(parts[5])
        if sha is None:
            return 422, {}, {"message": f"No commit found for SHA: {parts[5]}"}
        model = example["files"][0]
        files = [{**model, **f} for f in git.files(f"{sha}^" if git.parents(sha) else None, sha)]
        return 200, {}, {**self._commit_json(example, git, sha), "files": files}

    def _check_runs(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        example = self.description.example(template, "GET", 200)
        model = example["check_runs"][0]
        runs = [{**model, **run, "head_sha": parts[5]} for run in self.check_runs.get(parts[5], [])]
        page, links = self._page(runs, query, parts)
        return 200, links, {"total_count": len(runs), "check_runs": page}

    def _status(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        example = self.description.example(template, "GET", 200)
        model = example["statuses"][0]
        statuses = [{**model, **s} for s in self.commit_statuses.get(parts[5], [])]
        page, links = self._page(statuses, query, parts)
        example.update(sha=parts[5], statuses=page, total_count=len(statuses))
        return 200, links, example

    def _workflow_runs(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        example = self.description.example(template, "GET", 200)
        model = example["workflow_runs"][0]
        sha = query.get("head_sha", "")
        runs = [{**model, **r, "head_sha": sha} for r in self.workflow_runs.get(sha, [])]
        page, links = self._page(runs, query, parts)
        return 200, links, {"total_count": len(runs), "workflow_runs": page}

    def _compare(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        example = self.description.example(template, "GET", 200)
        model = example["commits"][0]
        git = self._git(parts)
        if git is None:
            commits = [{**model, "sha": f"{i:040x}"} for i in range(1, self.compare_commits + 1)]
        else:
            base, _, head = parts[5].partition("...")
            base_sha, head_sha = git.resolve(base), git.resolve(head)
            if base_sha is None or head_sha is None:
                return 404, {}, {"message": "Not Found"}
            commits = [self._commit_json(dict(model), git, sha) for sha in git.between(base_sha, head_sha)]
            file_model = example["files"][0]
            example.update(
                html_url=f"https://github.com/{git.name}/compare/{base}...{head}",
                status="ahead" if commits else "identical",
                ahead_by=len(commits),
                behind_by=0,
                files=[{**file_model, **f} for f in git.files(base_sha, head_sha)],
            )
        page, links = self._page(commits, query, parts)
        example.update(commits=page, total_commits=len(commits))
        return 200, links, example

    def _git(self, parts: list[str]) -> GitRepository | None:
        name = f"{parts[2]}/{parts[3]}"
        path = self.repositories.get(name)
        return None if path is None else GitRepository(name, path)

    def _commit_json(self, model: dict[str, Any], git: GitRepository, sha: str) -> dict[str, Any]:
        """A commit object as GitHub answers it (``commit``, ``author``, ``parents``), from ``git``."""
        name, email, date, message = git.show(sha)
        person = {"name": name, "email": email, "date": date}
        login = self.logins.get(email)
        author = None if login is None else {**(model.get("author") or {}), "login": login}
        url = f"https://github.com/{git.name}/commit/{sha}"
        return {
            **model,
            "sha": sha,
            "node_id": f"C_{sha[:12]}",
            "html_url": url,
            "url": f"{self.url}/repos/{git.name}/commits/{sha}",
            "commit": {**model["commit"], "message": message, "author": person, "committer": person},
            "author": author,
            "committer": author,
            "parents": [{"sha": p, "url": f"{self.url}/repos/{git.name}/commits/{p}"} for p in git.parents(sha)],
        }

    def _create_deployment(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        example = self.description.example(template, "POST", 201)
        with self.lock:
            deployment = GitHubDeployment(len(self.deployments) + 1, f"{parts[2]}/{parts[3]}", body)
            self.deployments.append(deployment)
        return 201, {}, self._deployment_json(example, deployment)

    def _list_deployments(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        example = self.description.example(template, "GET", 200)[0]
        repo = f"{parts[2]}/{parts[3]}"
        with self.lock:
            found = [
                d
                for d in reversed(self.deployments)
                if d.repo == repo
                and query.get("sha") in (None, d.body["ref"])
                and query.get("environment") in (None, d.body["environment"])
            ]
        items = [self._deployment_json(dict(example), d) for d in found]
        page, links = self._page(items, query, parts)
        return 200, links, page

    def _create_status(self, parts: list[str], query: dict[str, str], body: Any, template: str) -> Answer:
        with self.lock:
            deployment = next((d for d in self.deployments if d.id == int(parts[5])), None)
            if deployment is None:
                return 404, {}, {"message": "Not Found"}
            deployment.statuses.append(body)
        example = self.description.example(template, "POST", 201)
        example.update(id=len(deployment.statuses), state=body["state"], environment=deployment.body["environment"])
        return 201, {}, example

    def _deployment_json(self, example: dict[str, Any], d: GitHubDeployment) -> dict[str, Any]:
        return {
            **example,
            "id": d.id,
            "sha": d.body["ref"],
            "ref": d.body["ref"],
            "environment": d.body["environment"],
            "payload": d.body.get("payload", {}),
            "description": d.body.get("description"),
        }

    def _page(self, items: list[Any], query: dict[str, str], parts: list[str]) -> tuple[list[Any], dict[str, str]]:
        """One page of ``items`` as GitHub pages (``per_page``, default 30; ``page`` from 1), with its Link."""
        per_page = int(query.get("per_page", "30"))
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        if page * per_page >= len(items):
            return chunk, {}
        following = urlencode({**query, "page": str(page + 1)})
        return chunk, {"Link": f'<{self.url}{"/".join(parts)}?{following}>; rel="next"'}


@dataclass(frozen=True)
class GitRepository:
    """The real git repository a stand-in repository (``name``) is answered from."""

    name: str
    path: Path

    def _git(self, *args: str) -> str | None:
        done = subprocess.run(
            ["git", "-C", str(self.path), *args], capture_output=True, text=True, check=False, timeout=30
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def resolve(self, ref: str) -> str | None:
        return self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")

    def branch_head(self, branch: str) -> str | None:
        return self.resolve(f"refs/heads/{branch}")

    def show(self, sha: str) -> tuple[str, str, str, str]:
        """(author name, author email, author date, message)."""
        out = self._git("show", "-s", "--format=%an%x00%ae%x00%aI%x00%B", sha) or "\0\0\0"
        name, email, date, message = out.split("\0", 3)
        return name, email, date, message.strip()

    def parents(self, sha: str) -> list[str]:
        return (self._git("rev-parse", f"{sha}^@") or "").split()

    def between(self, base: str, head: str) -> list[str]:
        """The commits in ``head`` and not in ``base``, oldest first (GitHub's order)."""
        return (self._git("rev-list", "--reverse", f"{base}..{head}") or "").split()

    def files(self, base: str | None, head: str) -> list[dict[str, Any]]:
        """The files changed from ``base`` (None: from nothing) to ``head``, as GitHub lists them."""
        args = ["diff", "--name-status", "-M", base, head] if base else ["show", "--format=", "--name-status", head]
        statuses = {"A": "added", "M": "modified", "D": "removed", "R": "renamed", "C": "copied"}
        found: list[dict[str, Any]] = []
        for line in (self._git(*args) or "").splitlines():
            code, *names = line.split("\t")
            entry: dict[str, Any] = {"filename": names[-1], "status": statuses.get(code[:1], "changed")}
            if code.startswith("R"):
                entry["previous_filename"] = names[0]
            found.append(entry)
        return found


Answer = tuple[int, dict[str, str], Any]
Route = Callable[[GitHubStandIn, list[str], dict[str, str], Any, str], Answer]

ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/repos/{owner}/{repo}/installation"): GitHubStandIn._installation,
    ("POST", "/app/installations/{installation_id}/access_tokens"): GitHubStandIn._access_token,
    ("GET", "/repos/{owner}/{repo}/branches/{branch}"): GitHubStandIn._branch,
    ("GET", "/repos/{owner}/{repo}/commits/{ref}"): GitHubStandIn._commit,
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs"): GitHubStandIn._check_runs,
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/status"): GitHubStandIn._status,
    ("GET", "/repos/{owner}/{repo}/actions/runs"): GitHubStandIn._workflow_runs,
    ("GET", "/repos/{owner}/{repo}/compare/{basehead}"): GitHubStandIn._compare,
    ("POST", "/repos/{owner}/{repo}/deployments"): GitHubStandIn._create_deployment,
    ("GET", "/repos/{owner}/{repo}/deployments"): GitHubStandIn._list_deployments,
    ("POST", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"): GitHubStandIn._create_status,
}


def _header_problems(method: str, path: str, headers: dict[str, str]) -> list[str]:
    """The headers GitHub asks every REST client to send."""
    expected = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    problems = [
        f"{method} {path}: header {name} is {headers.get(name)!r}, not {value!r}"
        for name, value in expected.items()
        if headers.get(name) != value
    ]
    if not headers.get("User-Agent", "").startswith("conveyor/"):
        problems.append(f"{method} {path}: User-Agent is {headers.get('User-Agent')!r}")
    return problems
