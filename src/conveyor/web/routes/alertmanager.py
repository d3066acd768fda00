"""``POST /hooks/alertmanager``: system alerts stop the line, and lift it when they resolve.

Alertmanager's webhook receiver (payload ``version: "4"``) is pointed here, with the credentials of the
config's ``alertmanager`` section in its ``http_config`` (``authorization: {credentials: ...}`` for a
bearer token, or ``basic_auth``). Credentials are compared as SHA-256 digests in constant time. Without
an ``alertmanager`` section the route answers 404.

For every alert in a notification:

- **firing**: each environment whose ``stop_on`` matchers all match the alert's labels gets a
  stop-the-line hold, one per (alert, environment), named by its origin
  ``alertmanager:<fingerprint>:<environment>`` and carrying the alert as evidence. Alertmanager repeats a
  notification every ``repeat_interval`` (and may send it twice from an HA pair): a hold already in
  force for that origin is left alone, so there is never a second one.
- **resolved**: every hold raised for that alert (its fingerprint) is lifted.

The line stays stopped while any matching alert fires. Holds are raised and lifted through
:class:`~conveyor.operations.Operations` with the actor ``alertmanager``: recorded as operator actions
(``stop``, ``unfreeze``) and notified as ``hold.created`` / ``hold.lifted`` events. A person may lift
such a hold by hand (``conveyor unfreeze ID``); the same firing (same ``startsAt``) then does not raise
it again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from conveyor.config.resolved import AlertmanagerConfig
from conveyor.domain.alerts import Matcher, stopped_environments
from conveyor.web.errors import ApiError, error_responses
from conveyor.web.gate import body_cap
from conveyor.web.state import State

__all__ = ["ACTOR", "router"]

ACTOR = "alertmanager"
HOOK_MAX_BODY_BYTES = 4 * 1024 * 1024  # Alertmanager sends every alert of a group in one body
EVIDENCE_TEXT = 1000  # characters kept of each label and annotation value

router = APIRouter(tags=["hooks"])


class HookAlert(BaseModel):
    """One alert of a notification, in Alertmanager's names; fields it may add later are ignored."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str = ""
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{0,64}$")] = ""


class AlertmanagerNotification(BaseModel):
    """Alertmanager's webhook payload, version 4."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""
    alerts: list[HookAlert] = Field(max_length=10_000)


class HookReceipt(BaseModel):
    raised: list[int] = Field(description="stop-the-line holds raised by this notification")
    lifted: list[int] = Field(description="holds lifted because their alert resolved")
    unchanged: int = Field(description="alerts that changed nothing (already held, not matching stop_on)")


def _authorized(request: Request, state: State) -> AlertmanagerConfig:
    """The section, when the request carries its credentials; 404 without a section, else 401."""
    section = state.config.alertmanager
    if section is None:
        raise ApiError(404, "not_found", "no alertmanager section in conveyor.yaml: this hook is off")
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    ok = False
    if scheme == "bearer" and section.token_sha256 is not None:
        ok = hmac.compare_digest(hashlib.sha256(credentials.encode()).digest(), section.token_sha256)
    elif scheme == "basic" and section.basic_auth is not None:
        username, password = _basic(credentials)
        expected_user, expected_password = section.basic_auth
        same_user = hmac.compare_digest(username.encode(), expected_user.encode())
        same_password = hmac.compare_digest(hashlib.sha256(password.encode()).digest(), expected_password)
        ok = same_user and same_password
    if not ok:
        schemes = ", ".join(
            s for s, on in (("Bearer", section.token_sha256), ("Basic", section.basic_auth)) if on is not None
        )
        message = "missing or wrong credentials: configure http_config in Alertmanager's webhook receiver"
        raise ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": schemes})
    return section


def _basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    username, _, password = decoded.partition(":")
    return username, password


Authorized = Annotated[AlertmanagerConfig, Depends(_authorized)]


@router.post(
    "/hooks/alertmanager",
    response_model=HookReceipt,
    responses=error_responses(401, 404, 413, 422, 500, 503),
)
@body_cap(HOOK_MAX_BODY_BYTES)
def alertmanager_hook(state: State, section: Authorized, body: AlertmanagerNotification) -> dict[str, Any]:
    """Alertmanager's webhook (version 4): a firing alert matching `alertmanager.stop_on` stops the line in
    that environment; when it resolves, the line starts again. Authenticated by the bearer token or basic
    auth of the config's `alertmanager` section."""
    raised: list[int] = []
    lifted: list[int] = []
    unchanged = 0
    for alert in body.alerts:
        fingerprint = alert.fingerprint or _fingerprint(alert.labels)
        name = alert.labels.get("alertname", "unnamed alert")
        if alert.status == "resolved":
            done = state.operations.lift_from(f"alertmanager:{fingerprint}:", f"alert {name} resolved", ACTOR)
            lifted.extend(done)
            unchanged += not done
            continue
        stopped = stopped_environments(alert.labels, section.stop_on)
        unchanged += not stopped
        for environment, rule in stopped:
            hold_id = state.operations.stop_for(
                environment,
                f"alertmanager:{fingerprint}:{environment}",
                _reason(alert, name),
                _evidence(alert, fingerprint, rule),
                ACTOR,
            )
            if hold_id is None:
                unchanged += 1
            else:
                raised.append(hold_id)
    if raised or lifted:
        state.wake()
    return {"raised": raised, "lifted": lifted, "unchanged": unchanged}


def _fingerprint(labels: dict[str, str]) -> str:
    """For a sender that gives none: a digest of the sorted labels (what identifies an alert)."""
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def _reason(alert: HookAlert, name: str) -> str:
    summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
    text = f"alert {name} is firing" + (f": {summary}" if summary else "")
    return " ".join(text.split())[:500]


def _evidence(alert: HookAlert, fingerprint: str, rule: tuple[Matcher, ...]) -> dict[str, Any]:
    def short(values: dict[str, str]) -> dict[str, str]:
        return {k[:200]: v[:EVIDENCE_TEXT] for k, v in list(values.items())[:100]}

    return {
        "source": "alertmanager",
        "fingerprint": fingerprint,
        "alertname": alert.labels.get("alertname", ""),
        "labels": short(alert.labels),
        "annotations": short(alert.annotations),
        "starts_at": alert.startsAt,
        "generator_url": alert.generatorURL[:EVIDENCE_TEXT],
        "matched": [m.text() for m in rule],
    }
