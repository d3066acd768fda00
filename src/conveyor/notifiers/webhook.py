"""The ``webhook`` notifier: POST each notification as JSON, signed with a shared secret.

Requests follow the Standard Webhooks convention, so a receiver in any language verifies them with a
stock library and rejects stale or replayed ones:

- ``webhook-id``: the same on every retry of this notification to this notifier (a receiver that has
  seen it ignores the repeat);
- ``webhook-timestamp``: when this attempt was signed, in Unix seconds (a receiver refuses one too old);
- ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256 of ``<id>.<timestamp>.<body>``.

The key is :func:`signing_key` of ``secret``: a ``whsec_<base64>`` secret is the base64-decoded bytes (as
the convention has it); any other secret is its UTF-8 bytes, which a receiver's library takes as
``whsec_`` + base64 of the secret (docs/notifications.md).

Also, for receivers written before the above (legacy, kept as they were):

- ``X-Conveyor-Event``: the event kind (``deployment.failed``);
- ``X-Conveyor-Delivery``: the same id as ``webhook-id``;
- ``X-Conveyor-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the raw body with ``secret`` as
  written. It signs the body only, so a captured request verifies forever: verify ``webhook-signature``.

And ``Content-Type: application/json``, ``User-Agent: conveyor/<version>``.

A ``2xx`` answer is a delivery; anything else (another status, a refused connection, a timeout) is a
failed attempt that the sender retries later. Redirects are not followed. Error messages name the
receiver's host only: webhook URLs often carry a token in their path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Annotated, cast
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from conveyor import __version__
from conveyor.config.durations import Duration
from conveyor.config.urls import HttpUrl
from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, Notifier

__all__ = ["MAX_TIMEOUT", "WebhookNotifier", "WebhookOptions", "sign", "signing_key", "standard_signature"]

WHSEC_PREFIX = "whsec_"

MAX_TIMEOUT = 60.0  # a delivery must end well within the sender's lease on its outbox row


class WebhookOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    secret: SecretStr
    timeout: Annotated[Duration, Field(gt=0, le=MAX_TIMEOUT)] = 10.0

    @field_validator("secret")
    @classmethod
    def _not_empty(cls, secret: SecretStr) -> SecretStr:
        if not secret.get_secret_value().strip():
            raise ValueError("secret must not be empty (receivers check the signature made with it)")
        signing_key(secret.get_secret_value())  # a whsec_ secret must be base64
        return secret


def sign(body: bytes, secret: str) -> str:
    """The legacy ``X-Conveyor-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks key of ``secret``: ``whsec_<base64>`` decoded, any other secret's UTF-8 bytes."""
    if not secret.startswith(WHSEC_PREFIX):
        return secret.encode()
    encoded = secret.removeprefix(WHSEC_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a secret starting with whsec_ must be base64 after the prefix") from None
    if not key:
        raise ValueError("a secret starting with whsec_ must have a key after the prefix")
    return key


def standard_signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class WebhookNotifier(Notifier):
    """POSTs the notification's JSON to ``url``."""

    name = "webhook"
    Options = WebhookOptions

    def __init__(self, options: BaseModel, clock: Callable[[], float] = time.time) -> None:
        super().__init__(options)
        self.opts = cast(WebhookOptions, options)
        self.clock = clock  # Unix seconds, for webhook-timestamp
        self._key = signing_key(self.opts.secret.get_secret_value())
        self.host = urlsplit(self.opts.url).netloc.rpartition("@")[2]
        self._client = httpx.Client(timeout=self.opts.timeout, follow_redirects=False)

    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        body = notification.body()
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"conveyor/{__version__}",
            "webhook-id": ctx.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signature(self._key, ctx.delivery_id, timestamp, body),
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
