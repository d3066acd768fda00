"""The configuration as the rest of conveyor sees it: every default applied, every reference checked.

The loader (:mod:`conveyor.config.loader`) turns ``conveyor.yaml`` into these objects, or reports every
problem at once with its FILE:LINE:COL. Nothing outside ``conveyor.config`` reads YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel

from conveyor.config.retry import RetryPolicy
from conveyor.domain.alerts import Matcher
from conveyor.domain.error_spikes import SpikeRule
from conveyor.domain.holds import Window
from conveyor.domain.model import CheckLimits, OnFailure, Tier

API_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class DeploySpec:
    driver: str
    options: BaseModel  # the driver's own Options model, validated, placeholders already filled in
    step_timeout: float = 3600.0  # seconds before the engine fails the step, whatever the driver does


@dataclass(frozen=True)
class CheckSpec:
    name: str
    type: str
    options: BaseModel  # the check's own Options model, validated, placeholders already filled in
    limits: CheckLimits
    step_timeout: float = 3600.0  # seconds before the engine fails the step, whatever the check does


@dataclass(frozen=True)
class AppEnvironment:
    """One app's settings in one environment (defaults < app < app.environments.<env>)."""

    environment: str
    vars: dict[str, str]
    deploy: DeploySpec
    checks: tuple[CheckSpec, ...]
    on_failure: OnFailure = "hold"  # after failed checks: hold (block), or roll back to the last good release
    bake: float = 0.0  # bake tier: seconds a release stays baking after its checks pass
    bake_interval: float = 60.0  # seconds between rounds of checks while baking


@dataclass(frozen=True)
class TeamConfig:
    name: str
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotifierConfig:
    """One entry of ``notifiers``: a notifier plugin (``type``) with its validated options."""

    name: str
    type: str
    options: BaseModel  # the notifier's own Options model, validated
    is_global: bool = False  # gets every app's events, not only those of teams that list it
    events: frozenset[str] = frozenset()  # the event kinds it is sent
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # when its failed deliveries are tried again


@dataclass(frozen=True)
class CiPolicy:
    """What a pushed commit must pass on GitHub before it becomes a release (``ci:``; ``ci: none`` is None)."""

    required: tuple[str, ...]  # check run names, status contexts or workflow names, all of which must be green
    timeout: float = 7200.0  # seconds a candidate waits for them before a decision says CI never reported


@dataclass(frozen=True)
class GitHubApp:
    id: int
    private_key: str = field(repr=False)  # the PEM text of the App's private key


@dataclass(frozen=True)
class GitHubConfig:
    """The top-level ``github:`` section: how conveyor hears from GitHub and talks back to it."""

    api_url: str = "https://api.github.com"  # a GitHub Enterprise Server API URL works too
    webhook_secret: str = field(default="", repr=False)  # checks X-Hub-Signature-256 of every delivery
    token: str | None = field(default=None, repr=False)  # a token, or ...
    app: GitHubApp | None = None  # ... a GitHub App whose installation tokens conveyor fetches
    reconcile_interval: float = 300.0  # seconds between catch-up reads of every GitHub app's branch
    retention: float = 14 * 86400.0  # seconds finished deliveries and CI results no candidate waits on are kept


@dataclass(frozen=True)
class ErrorRateLimit:
    """At most ``envelopes`` requests per key in each ``per`` seconds; more are answered 429."""

    envelopes: int = 6000
    per: float = 60.0


@dataclass(frozen=True)
class ErrorsConfig:
    """The top-level ``errors:`` section: the Sentry-compatible error intake (docs/errors.md)."""

    retention: float = 14 * 86400.0  # seconds raw events are kept
    counts_retention: float = 90 * 86400.0  # seconds per-minute counts (and so rates) are kept
    rate_limit: ErrorRateLimit = field(default_factory=ErrorRateLimit)
    max_body_bytes: int = 5 * 1024 * 1024  # a request body as sent (compressed)
    max_decompressed_bytes: int = 20 * 1024 * 1024  # the same body decompressed
    spike: SpikeRule = field(default_factory=SpikeRule)


@dataclass(frozen=True)
class AppConfig:
    name: str
    repo: str  # as written: a local path (resolved against the config's folder), file:// or https URL
    branch: str
    team: str
    tier: Tier
    reason: str | None  # required when tier is manual
    groups: tuple[str, ...]
    environments: dict[str, AppEnvironment]  # one entry for every configured environment, in order
    github: str | None = None  # "owner/name" on GitHub: pushes and CI results there make releases
    paths: tuple[str, ...] = ()  # globs: a push touching none of them is ignored (monorepos); () = any
    ci: CiPolicy | None = None  # None: a push (or a polled head) is released without waiting for CI
    poll: float | None = None  # seconds between `git ls-remote` of the repo, for repositories not on GitHub

    def lock_names(self, environment: str) -> tuple[str, ...]:
        """The locks a deployment of this app to ``environment`` must hold, all or nothing."""
        return (f"app:{self.name}:{environment}", *(f"group:{g}:{environment}" for g in self.groups))


@dataclass(frozen=True)
class ApiToken:
    """A bearer token of the HTTP API, kept as its SHA-256 digest only; ``name`` makes the actor ``api:<name>``."""

    name: str
    sha256: bytes = field(repr=False)


@dataclass(frozen=True)
class AlertmanagerConfig:
    """The top-level ``alertmanager:`` section: how ``POST /hooks/alertmanager`` knows Alertmanager, and
    which firing alerts stop the line where. Secrets are kept as SHA-256 digests only."""

    token_sha256: bytes | None = field(default=None, repr=False)  # Authorization: Bearer <token>
    basic_auth: tuple[str, bytes] | None = field(default=None, repr=False)  # username, digest of the password
    stop_on: dict[str, tuple[Matcher, ...]] = field(default_factory=dict)  # environment -> matchers (all must match)


@dataclass(frozen=True)
class Config:
    path: Path
    environments: tuple[str, ...]
    teams: dict[str, TeamConfig]
    groups: dict[str, str]  # group name -> description
    apps: dict[str, AppConfig]
    state_dir: Path  # mirrors, checkouts, pid files, logs
    database_url: str  # CONVEYOR_DATABASE_URL, or sqlite beside the config file
    secrets: frozenset[str] = field(default_factory=frozenset)  # values that came from ${VAR}
    notifiers: dict[str, NotifierConfig] = field(default_factory=dict)
    api_tokens: tuple[ApiToken, ...] = ()
    windows: dict[str, Window] = field(default_factory=dict)  # environment -> its opening hours
    api_max_body_bytes: int = API_MAX_BODY_BYTES  # the largest request body the API reads
    github: GitHubConfig | None = None  # None: no `github:` section, nothing talks to GitHub
    public_url: str = DEFAULT_PUBLIC_URL  # base of every link conveyor gives out, without a trailing slash
    alertmanager: AlertmanagerConfig | None = None  # None: no `alertmanager:` section, the hook answers 404
    errors: ErrorsConfig = field(default_factory=ErrorsConfig)

    def link(self, path: str) -> str:
        """An absolute URL for ``path`` (``/api/...``) under :attr:`public_url`."""
        return self.public_url + "/" + path.lstrip("/")

    def app(self, name: str) -> AppConfig:
        try:
            return self.apps[name]
        except KeyError:
            raise UnknownName("app", name, list(self.apps)) from None

    def check_environment(self, name: str) -> str:
        if name not in self.environments:
            raise UnknownName("environment", name, list(self.environments))
        return name

    def next_environment(self, name: str) -> str | None:
        i = self.environments.index(name)
        return self.environments[i + 1] if i + 1 < len(self.environments) else None

    @cached_property
    def _secret_pattern(self) -> re.Pattern[str] | None:
        # Longest first: where one secret is a prefix of another, the longer one must match, or its
        # tail would be left in the clear after the shorter one was replaced.
        secrets = sorted((s for s in self.secrets if s), key=len, reverse=True)
        return re.compile("|".join(map(re.escape, secrets))) if secrets else None

    def redact(self, text: str) -> str:
        pattern = self._secret_pattern
        return pattern.sub("********", text) if pattern is not None else text


class UnknownName(LookupError):
    """A user named an app or environment the config does not have."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r} (known: {', '.join(known) or 'none'})")
