"""The ``sentry`` notifier: releases and deploy markers in Sentry, so its issues and release health line up
with what conveyor deployed.

- ``release.created`` → ``POST /api/0/organizations/{org}/releases/`` with ``version`` (``release_prefix``
  + the release's label), ``projects`` (the app's Sentry projects) and ``ref`` (the commit SHA). Sentry
  answers 201 when it made the release and 208 when it already had it: both are a delivery.
- ``deployment.started`` → nothing is sent; its time is remembered for the release (``ctx.memory``).
- ``deployment.succeeded`` / ``deployment.failed`` → ``POST /api/0/organizations/{org}/releases/{version}/deploys/``
  with ``environment``, ``name`` (``conveyor #<deployment> succeeded``), ``dateStarted`` (the remembered
  start) and ``dateFinished``: one deploy marker per deployment, made when it is over. A release Sentry
  does not know yet (the notifier was added after the release was cut) is created first.

Every other event is taken and ignored. A retried delivery first lists the release's deploys and does not
add a second marker with the same name, so Sentry sees one per deployment however often a delivery is
tried. Requests carry ``Authorization: Bearer <token>``; messages name the Sentry host, never the token.
A ``2xx`` answer is a delivery; anything else, a refused connection or a timeout is a failed attempt the
sender retries.
"""

from __future__ import annotations

from typing import Annotated, Any, cast
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from conveyor import __version__
from conveyor.config.durations import Duration
from conveyor.config.urls import BaseUrl
from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, Notifier

__all__ = ["SentryNotifier", "SentryNotifierOptions"]

MAX_TIMEOUT = 60.0
STARTED_KEY = "sentry_started_{}"  # memory key: when deployment {} started
RELEASE_KEY = "sentry_release"  # memory key: the release exists in Sentry


class SentryNotifierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: BaseUrl = "https://sentry.io"
    org: str = Field(min_length=1)
    token: SecretStr  # an auth token with project:releases (org:ci), e.g. ${SENTRY_TOKEN}
    projects: dict[str, list[str]] = Field(default_factory=dict)  # app -> its Sentry project slugs
    release_prefix: str = ""  # Sentry's release name is this + conveyor's label; "{app}" is the app's name
    timeout: Annotated[Duration, Field(gt=0, le=MAX_TIMEOUT)] = 10.0

    @field_validator("projects")
    @classmethod
    def _some_projects(cls, projects: dict[str, list[str]]) -> dict[str, list[str]]:
        for app, slugs in projects.items():
            if not slugs or not all(s.strip() for s in slugs):
                raise ValueError(f"projects of app {app!r} must be a list of Sentry project slugs")
        return projects

    def projects_of(self, app: str) -> list[str]:
        return self.projects.get(app) or [app]

    def version(self, app: str, label: str) -> str:
        return self.release_prefix.replace("{app}", app) + label


class SentryNotifier(Notifier):
    """Creates releases and deploy markers in Sentry."""

    name = "sentry"
    Options = SentryNotifierOptions

    def __init__(self, options: BaseModel) -> None:
        super().__init__(options)
        self.opts = cast(SentryNotifierOptions, options)
        self.host = urlsplit(self.opts.url).netloc.rpartition("@")[2]
        self.base = f"{self.opts.url}/api/0/organizations/{quote(self.opts.org, safe='')}"
        self._client = httpx.Client(
            timeout=self.opts.timeout,
            follow_redirects=False,
            headers={
                "Authorization": f"Bearer {self.opts.token.get_secret_value()}",
                "User-Agent": f"conveyor/{__version__}",
            },
        )

    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        n = notification
        if n.app is None or n.release is None:
            return DeliveryResult(True, "nothing for Sentry: no app or release")
        version = self.opts.version(n.app, n.release.label)
        try:
            if n.kind == "release.created":
                return self._create_release(n, version)
            if n.kind == "deployment.started" and n.deployment_id is not None:
                return DeliveryResult(True, "start remembered", {STARTED_KEY.format(n.deployment_id): n.at.isoformat()})
            if n.kind in ("deployment.succeeded", "deployment.failed") and n.environment and n.deployment_id:
                return self._deploy_marker(n, ctx, version)
        except httpx.TimeoutException:
            return DeliveryResult(False, f"timed out after {self.opts.timeout:g}s talking to Sentry at {self.host}")
        except httpx.HTTPError as exc:
            return DeliveryResult(False, f"cannot reach Sentry at {self.host}: {type(exc).__name__}")
        return DeliveryResult(True, f"nothing for Sentry in {n.kind}")

    def _create_release(self, n: Notification, version: str) -> DeliveryResult:
        assert n.app is not None and n.release is not None
        body = {"version": version, "projects": self.opts.projects_of(n.app), "ref": n.release.sha}
        response = self._client.post(f"{self.base}/releases/", json=body)
        if not response.is_success:
            return self._failed("creating release", version, response)
        return DeliveryResult(True, f"release {version} in Sentry (HTTP {response.status_code})", {RELEASE_KEY: "1"})

    def _deploy_marker(self, n: Notification, ctx: DeliveryContext, version: str) -> DeliveryResult:
        outcome = n.kind.removeprefix("deployment.")
        name = f"conveyor #{n.deployment_id} {outcome}"[:64]
        remember: dict[str, str] = {}
        if ctx.memory.get(RELEASE_KEY) is None:  # it may predate this notifier: make sure Sentry has it
            made = self._create_release(n, version)
            if not made.ok:
                return made
            remember.update(made.remember)
        deploys = f"{self.base}/releases/{quote(version, safe='')}/deploys/"
        if ctx.attempt > 1 and self._has_deploy(deploys, name, n.environment or ""):
            return DeliveryResult(True, f"deploy marker {name!r} already in Sentry", remember)
        body: dict[str, Any] = {
            "environment": n.environment,
            "name": name,
            "dateStarted": ctx.memory.get(STARTED_KEY.format(n.deployment_id)),
            "dateFinished": n.at.isoformat(),
            "projects": self.opts.projects_of(n.app or ""),
        }
        response = self._client.post(deploys, json={k: v for k, v in body.items() if v is not None})
        if not response.is_success:
            return self._failed("adding a deploy to", version, response)
        return DeliveryResult(True, f"deploy marker {name!r} for {version} in {n.environment}", remember)

    def _has_deploy(self, url: str, name: str, environment: str) -> bool:
        response = self._client.get(url)
        if not response.is_success:
            return False
        try:
            listed = response.json()
        except ValueError:
            return False
        return isinstance(listed, list) and any(
            isinstance(d, dict) and d.get("name") == name and d.get("environment") == environment for d in listed
        )

    def _failed(self, doing: str, version: str, response: httpx.Response) -> DeliveryResult:
        text = " ".join(response.text.split())[:200]
        detail = f": {text}" if text else ""
        return DeliveryResult(
            False, f"HTTP {response.status_code} from Sentry at {self.host} {doing} {version}{detail}"
        )

    def close(self) -> None:
        self._client.close()
