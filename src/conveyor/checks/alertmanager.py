"""The ``alertmanager`` check: no firing alert about this release, or it fails.

It asks Alertmanager's API v2 for the alerts that are firing now and neither silenced nor inhibited,
filtered by ``matchers`` (Alertmanager's syntax, see :mod:`conveyor.domain.alerts`; ``{app}``, ``{env}``,
vars, ``{version}`` and ``{sha}`` filled in)::

    GET {address}/api/v2/alerts?active=true&silenced=false&inhibited=false&filter=app="shop"&filter=...

and applies the same matchers again to what comes back (a proxy or an older Alertmanager that ignores
``filter`` cannot make it pass wrongly), keeping only alerts whose state is ``active``.

Phases: none found → ``pass``; some → ``fail``, the message naming each alert (``alertname``) with its
``summary`` annotation, and ``value`` the number of alerts; Alertmanager unreachable, timing out, or
answering something else than its API → ``error``.
"""

from __future__ import annotations

from typing import Any, cast

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.reading import RequestHeaders, Unreachable, get
from conveyor.checks.release_text import RELEASE_PLACEHOLDERS, UnsafeReleaseText, fill_release
from conveyor.domain.alerts import Matcher, MatcherError, matches_all, parse_matcher
from conveyor.domain.model import Measurement
from conveyor.steps import StepContext

__all__ = ["AlertmanagerCheck", "AlertmanagerOptions", "describe_alerts"]

SHOWN_ALERTS = 5


class AlertmanagerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str
    matchers: list[str] = Field(min_length=1)
    timeout: float = Field(default=10, gt=0)
    headers: RequestHeaders

    @field_validator("address")
    @classmethod
    def _http_address(cls, address: str) -> str:
        if not address.startswith(("http://", "https://")):
            raise ValueError(f"address must start with http:// or https://, got {address!r}")
        return address.rstrip("/")

    @field_validator("matchers")
    @classmethod
    def _parsable(cls, matchers: list[str]) -> list[str]:
        for text in matchers:
            try:
                parse_matcher(text)
            except MatcherError as exc:
                raise ValueError(str(exc)) from None
        return matchers


class AlertmanagerCheck(Check):
    """Fail while an alert matching ``matchers`` fires at ``address``."""

    name = "alertmanager"
    Options = AlertmanagerOptions
    release_placeholders = RELEASE_PLACEHOLDERS

    def measure(self, request: CheckRequest, ctx: StepContext) -> Measurement:
        opts = cast(AlertmanagerOptions, request.options)
        try:
            matchers = [parse_matcher(fill_release(text, request)) for text in opts.matchers]
        except (UnsafeReleaseText, MatcherError) as exc:
            return Measurement.errored(str(exc))
        shown = ", ".join(m.text() for m in matchers)
        params: list[tuple[str, str]] = [
            ("active", "true"),
            ("silenced", "false"),
            ("inhibited", "false"),
        ]
        params += [("filter", m.text()) for m in matchers]
        try:
            response = get(opts.address, "/api/v2/alerts", params, opts.headers, opts.timeout)
        except Unreachable as exc:
            return Measurement.errored(str(exc))
        alerts = _alerts(response)
        if alerts is None:
            return Measurement.errored(f"HTTP {response.status_code} from {response.url}: {response.text[:200]}")
        firing = [a for a in alerts if _firing(a, matchers)]
        if not firing:
            return Measurement.passed(f"no alert firing at {opts.address} matches {shown}", value="0")
        return Measurement.failed(
            f"{len(firing)} alert(s) firing matching {shown}: {describe_alerts(firing)}", value=str(len(firing))
        )


def _alerts(response: httpx.Response) -> list[dict[str, Any]] | None:
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, list) or not all(isinstance(a, dict) for a in body):
        return None
    return body


def _firing(alert: dict[str, Any], matchers: list[Matcher]) -> bool:
    labels = alert.get("labels")
    status = alert.get("status")
    if not isinstance(labels, dict):
        return False
    if isinstance(status, dict) and status.get("state", "active") != "active":
        return False  # silenced or inhibited, should the server have ignored the query parameters
    return matches_all(matchers, {str(k): str(v) for k, v in labels.items()})


def describe_alerts(alerts: list[dict[str, Any]]) -> str:
    """``HighErrorRate (5xx above 5%); DiskFull``: each alert's name and summary, the first few."""
    parts = []
    for alert in alerts[:SHOWN_ALERTS]:
        labels, annotations = alert.get("labels") or {}, alert.get("annotations") or {}
        name = str(labels.get("alertname", "unnamed alert"))
        summary = annotations.get("summary") or annotations.get("description")
        parts.append(f"{name} ({str(summary)[:200]})" if summary else name)
    more = f"; and {len(alerts) - SHOWN_ALERTS} more" if len(alerts) > SHOWN_ALERTS else ""
    return "; ".join(parts) + more
