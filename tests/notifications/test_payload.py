"""The payload receivers get: its exact shape, stable bytes, and a signature a receiver can check."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from conveyor.notifiers.base import ReleaseRef
from conveyor.notifiers.webhook import sign
from tests.notifications.notifier_contract import make_notification


def test_the_payload_has_the_documented_shape() -> None:
    notification = make_notification()
    assert notification.to_json() == {
        "id": 42,
        "kind": "deployment.failed",
        "at": "2026-11-26T09:30:00+00:00",
        "actor": "conveyor",
        "app": "shop",
        "environment": "staging",
        "release": {"id": 7, "label": "v1.2.3", "sha": "0123456789abcdef0123456789abcdef01234567"},
        "deployment_id": 12,
        "message": "failed check 'smoke' in staging: HTTP 500",
        "team": "web-team",
        "data": {"check": "smoke"},
    }


def test_an_event_without_release_has_release_null() -> None:
    payload = make_notification(kind="hold.lifted", release=None, deployment_id=None).to_json()
    assert payload["release"] is None and payload["deployment_id"] is None


def test_the_body_is_the_same_bytes_every_time() -> None:
    one = make_notification(data={"b": 1, "a": [1, 2]})
    two = make_notification(data={"a": [1, 2], "b": 1})
    assert one.body() == two.body()
    assert json.loads(one.body()) == one.to_json()


def test_a_receiver_verifies_the_signature_with_hmac() -> None:
    body = make_notification(at=datetime(2026, 1, 1, tzinfo=UTC), release=ReleaseRef(1, "v1", "a" * 40)).body()
    header = sign(body, "shared-secret")
    # what docs/notifications.md tells a receiver to do:
    expected = "sha256=" + hmac.new(b"shared-secret", body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(header, expected)
