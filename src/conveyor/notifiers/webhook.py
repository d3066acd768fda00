"""The ``webhook`` notifier: POST each notification as JSON, signed with a shared secret.

Headers of every request:

- ``Content-Type: application/json`` and ``User-Agent: conveyor/<version>``;
- ``X-Conveyor-Event``: the event kind (``deployment.failed``);
- ``X-Conveyor-Delivery``: an id that is the same on every retry of this notification to this notifier,
  so a receiver can ignore a repeat;
- ``X-Conveyor-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the raw body with ``secret``.

A ``2xx`` answer is a delivery; anything else (another status, a refused connection, a timeout) is a
failed attempt that the sender retries later. Redirects are not followed. Error messages name the
receiver's host only: webhook URLs often carry a token in their path.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, cast
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from conveyor import __version__
from conveyor.config.durations import Duration
from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, Notifier

__all__ = ["MAX_TIMEOUT", "WebhookNotifier", "WebhookOptions", "sign"]

MAX_TIMEOUT = 60.0  # a delivery must end well within the sender's lease on its outbox row


class WebhookOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    secret: SecretStr
    timeout: Annotated[Duration, Field(gt=0, le=MAX_TIMEOUT)] = 10.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be an http:// or https:// URL, got {url!r}")
        return url

    @field_validator("secret")
    @classmethod
    def _not_empty(cls, secret: SecretStr) -> SecretStr:
        if not secret.get_secret_value().strip():
            raise ValueError("secret must not be empty (receivers check the signature made with it)")
        return secret


def sign(body: bytes, secret: str) -> str:
    """The ``X-Conveyor-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier(Notifier):
    """POSTs the notification's JSON to ``url``."""

    name = "webhook"
    Options = WebhookOptions

    def __init__(self, options: BaseModel) -> None:
        super().__init__(options)
        self.opts = cast(WebhookOptions, options)
        self.host = urlsplit(self.opts.url).netloc.rpartition("@")[2]
        self._client = httpx.Client(timeout=self.opts.timeout, follow_redirects=False)

    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        body = notification.body()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"conveyor/{__version__}",
            "X-Conveyor-Event": notification.kind,
            "X-Conveyor-Delivery": ctx.delivery_id,
            "X-Conveyor-Signature": sign(body, self.opts.secret.get_secret_value()),
        }
        try:
            response = self._client.post(self.opts.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return DeliveryResult(False, f"timed out after {self.opts.timeout:g}s posting to {self.host}")
        except httpx.HTTPError as exc:
            reason = str(exc).replace(self.opts.url, self.host) or type(exc).__name__
            return DeliveryResult(False, f"cannot reach {self.host}: {reason}")
        if not response.is_success:
            return DeliveryResult(False, f"HTTP {response.status_code} from {self.host}{_excerpt(response)}")
        return DeliveryResult(True, f"HTTP {response.status_code} from {self.host}")

    def close(self) -> None:
        self._client.close()


def _excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())[:200]
    return f": {text}" if text else ""
