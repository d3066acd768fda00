"""The ``github`` notifier: each deployment of an app on GitHub becomes a GitHub Deployment with statuses.

So a pull request's page on GitHub says "deployed to production", and the repository's Environments
list what runs where. Configured as ``notifiers: {github: {type: github}}`` with no options: it talks
to GitHub with the top-level ``github:`` section's token or App, and gets the events of every app that
has ``github`` set (and of no other app), whatever the teams' ``notify`` lists say.

A conveyor deployment maps to GitHub like this (``ref`` the release's sha, ``environment`` conveyor's):

- ``deployment.started``: ``POST /repos/{o}/{r}/deployments`` (``auto_merge`` false, ``required_contexts``
  empty, ``payload.conveyor`` naming the deployment and release), then a status ``in_progress``;
- ``deployment.succeeded``: ``success``; and ``inactive`` for the deployment it replaced there (the
  event's ``replaced``: the previous last good release of that environment);
- ``deployment.failed``: ``failure``;
- ``deployment.cancelled``: ``error`` (only for a deployment GitHub was told about: one cancelled
  before it started never was).

Every status has ``log_url`` (conveyor's API for the deployment), ``environment_url`` (conveyor's API
for the app) and ``auto_inactive`` false: GitHub would mark earlier deployments inactive on its own only
in environments it does not count as production, so conveyor marks the replaced one itself, the same in
every environment.

The GitHub deployment's id is remembered per conveyor deployment in the release's notifier memory
(``deployment:<id>``). A delivery retried after GitHub created the deployment but before conveyor heard
the answer finds it again (``GET .../deployments?sha=&environment=``, matched on ``payload.conveyor``)
instead of creating a second one. GitHub being down is a failed delivery, retried by the outbox: deploys
never wait for it. The notifier is ordered by app (``ordered_by_app``): one app's statuses arrive in
the order they happened across its releases, so after an outage a release's ``success`` never lands
after the ``inactive`` that the next release sent for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from conveyor.config.resolved import Config
from conveyor.github.client import GitHubClient, GitHubError, RetryLimits, github_client_for
from conveyor.github.reads import GitHubUnavailable, Json
from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, Notifier

__all__ = ["DEPLOYMENT_STATES", "GitHubNotifier"]

# conveyor's event kind -> the state of the GitHub deployment status it posts
DEPLOYMENT_STATES: Mapping[str, str] = {
    "deployment.started": "in_progress",
    "deployment.succeeded": "success",
    "deployment.failed": "failure",
    "deployment.cancelled": "error",
}
DESCRIPTION_LIMIT = 140  # GitHub's longest deployment (status) description
# A delivery must end well within the sender's lease on its outbox row (two minutes): short waits here,
# the outbox's own backoff for anything longer.
NOTIFIER_LIMITS = RetryLimits(attempts=3, backoff=0.5, max_backoff=4.0, max_wait=20.0, timeout=10.0)


class GitHubNotifier(Notifier):
    """``repos`` maps an app to its GitHub repository ("owner/name"); ``link`` makes a path under
    conveyor's ``public_url``; ``production`` is the environment GitHub shows as production."""

    name = "github"
    default_events: ClassVar[frozenset[str] | None] = frozenset(DEPLOYMENT_STATES)
    needs_section: ClassVar[str | None] = "github"
    ordered_by_app: ClassVar[bool] = True  # the `inactive` for a replaced deployment comes after its `success`

    def __init__(
        self,
        options: BaseModel,
        *,
        client: GitHubClient | None = None,
        repos: Mapping[str, str] | None = None,
        link: Callable[[str], str] | None = None,
        production: str | None = None,
    ) -> None:
        super().__init__(options)
        if client is None:
            raise ValueError("the github notifier needs the top-level `github:` section with a token or an app")
        self.client = client
        self.repos = dict(repos or {})
        self.link = link or (lambda path: path)
        self.production = production

    @classmethod
    def for_config(cls, options: BaseModel, config: Config) -> Notifier:
        return cls(
            options,
            client=github_client_for(config, limits=NOTIFIER_LIMITS),
            repos={name: app.github for name, app in config.apps.items() if app.github},
            link=config.link,
            production=config.environments[-1] if config.environments else None,
        )

    @classmethod
    def apps_concerned(cls, config: Config) -> frozenset[str] | None:
        return frozenset(name for name, app in config.apps.items() if app.github)

    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        n = notification
        state = DEPLOYMENT_STATES.get(n.kind)
        repo = self.repos.get(n.app) if n.app is not None else None
        if state is None or repo is None or n.release is None or n.deployment_id is None or n.environment is None:
            return DeliveryResult(True, "nothing to tell GitHub")
        key = f"deployment:{n.deployment_id}"
        remember: dict[str, str] = {}
        try:
            remembered = ctx.memory.get(key)
            if remembered is None and n.kind == "deployment.cancelled":
                return DeliveryResult(True, "cancelled before GitHub heard of it")
            github_id = int(remembered) if remembered is not None else self._find_or_create(repo, n)
            remember[key] = str(github_id)
            self.client.create_deployment_status(repo, github_id, self._status(n, state))
            if n.kind == "deployment.succeeded":
                self._mark_replaced_inactive(repo, n)
        except (GitHubError, GitHubUnavailable) as exc:
            return DeliveryResult(False, str(exc), remember=remember)
        except (KeyError, TypeError, ValueError) as exc:  # an answer not as GitHub documents it
            reason = f"unexpected answer from GitHub: {type(exc).__name__}: {exc}"
            return DeliveryResult(False, reason, remember=remember)
        return DeliveryResult(True, f"GitHub deployment {github_id} of {repo}: {state}", remember=remember)

    def close(self) -> None:
        self.client.close()

    def _find_or_create(self, repo: str, n: Notification) -> int:
        assert n.release is not None and n.environment is not None and n.deployment_id is not None
        found = self._find(repo, n.release.sha, n.environment, n.deployment_id)
        if found is not None:
            return found
        description = f"{n.app} {n.release.label} by conveyor (deployment {n.deployment_id})"
        created = self.client.create_deployment(
            repo,
            {
                "ref": n.release.sha,
                "environment": n.environment,
                "auto_merge": False,
                "required_contexts": [],
                "payload": {
                    "conveyor": {
                        "deployment_id": n.deployment_id,
                        "app": n.app,
                        "release": n.release.label,
                        "url": self.link(f"/api/deployments/{n.deployment_id}"),
                    }
                },
                "description": description[:DESCRIPTION_LIMIT],
                "production_environment": n.environment == self.production,
            },
        )
        if "id" not in created:  # 202: GitHub merged the default branch in instead (never, with auto_merge off)
            raise GitHubError(202, str(created.get("message", "")), f"POST /repos/{repo}/deployments")
        return int(created["id"])

    def _find(self, repo: str, sha: str, environment: str, deployment_id: int) -> int | None:
        """The GitHub deployment conveyor made for ``deployment_id``, if there is one."""
        for deployment in self.client.deployments(repo, sha=sha, environment=environment):
            if _conveyor_id(deployment) == deployment_id:
                return int(deployment["id"])
        return None

    def _status(self, n: Notification, state: str) -> dict[str, Any]:
        return {
            "state": state,
            "log_url": self.link(f"/api/deployments/{n.deployment_id}"),
            "environment_url": self.link(f"/api/apps/{n.app}"),
            "description": _one_line(n.message)[:DESCRIPTION_LIMIT],
            "auto_inactive": False,
        }

    def _mark_replaced_inactive(self, repo: str, n: Notification) -> None:
        replaced = n.data.get("replaced")
        if not isinstance(replaced, Mapping) or n.environment is None:
            return
        release, deployment_id = replaced.get("release"), replaced.get("deployment_id")
        sha = release.get("sha") if isinstance(release, Mapping) else None
        if not isinstance(sha, str) or not isinstance(deployment_id, int):
            return
        github_id = self._find(repo, sha, n.environment, deployment_id)
        if github_id is None:
            return  # made before GitHub was told about deployments: nothing there to mark
        label = n.release.label if n.release else "a newer release"
        status = {
            "state": "inactive",
            "log_url": self.link(f"/api/deployments/{deployment_id}"),
            "description": f"replaced by {label}"[:DESCRIPTION_LIMIT],
            "auto_inactive": False,
        }
        self.client.create_deployment_status(repo, github_id, status)


def _conveyor_id(deployment: Json) -> int | None:
    payload = deployment.get("payload")
    ours = payload.get("conveyor") if isinstance(payload, dict) else None
    value = ours.get("deployment_id") if isinstance(ours, dict) else None
    return value if isinstance(value, int) else None


def _one_line(text: str) -> str:
    return " ".join(text.split())
