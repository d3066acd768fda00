"""The ``webhook`` notifier: the contract, its headers and signature, and what counts as delivered."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from conveyor import __version__
from conveyor.notifiers.base import Notifier
from conveyor.notifiers.webhook import WebhookNotifier, WebhookOptions, sign, signing_key, standard_signature
from tests.integration.harness import free_port
from tests.notifications.notifier_contract import NotifierContract, make_context, make_notification
from tests.notifications.receiver import Receiver, signature_is_valid, standard_error, standard_secret

SECRET = "s3cret-for-tests"


def webhook(url: str, timeout: float = 2.0, secret: str = SECRET, clock: Any = time.time) -> WebhookNotifier:
    options = WebhookOptions.model_validate({"url": url, "secret": secret, "timeout": timeout})
    return WebhookNotifier(options, clock=clock)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(free_port(), SECRET).start()
    yield receiver
    receiver.close()


class TestWebhookContract(NotifierContract):
    __test__ = True

    @pytest.fixture
    def notifier(self, receiver: Receiver) -> Iterator[Notifier]:
        notifier = webhook(receiver.url)
        yield notifier
        notifier.close()

    @pytest.fixture
    def failing_notifier(self, receiver: Receiver) -> Iterator[Notifier | None]:
        receiver.mode = "error"
        notifier = webhook(receiver.url)
        yield notifier
        notifier.close()

    @pytest.fixture
    def slow_notifier(self, receiver: Receiver) -> Iterator[Notifier | None]:
        receiver.mode = "slow"
        notifier = webhook(receiver.url, timeout=0.3)
        yield notifier
        notifier.close()

    def received(self, notifier: Notifier) -> int | None:
        return None  # the receiver fixture is checked in the tests below


def test_posts_signed_json_with_the_documented_headers(receiver: Receiver) -> None:
    notifier = webhook(receiver.url)
    try:
        notification = make_notification()
        result = notifier.deliver(notification, make_context(delivery_id="d-1"))
    finally:
        notifier.close()
    assert result.ok, result.message
    [request] = receiver.received()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"conveyor/{__version__}"
    assert request.event_kind == "deployment.failed"
    assert request.delivery_id == "d-1"
    assert request.signature_ok
    assert request.headers["X-Conveyor-Signature"] == sign(request.body, SECRET)
    assert request.standard_error is None
    assert request.headers["webhook-id"] == "d-1"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    assert request.body == notification.body()
    assert request.payload == json.loads(notification.body())


def test_the_signature_is_a_hex_hmac_sha256_of_the_raw_body() -> None:
    # the HMAC-SHA256 test vector everyone knows, in the header's format
    body = b"The quick brown fox jumps over the lazy dog"
    assert sign(body, "key") == "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    assert signature_is_valid(body, sign(body, "key"), "key")
    assert not signature_is_valid(body + b" ", sign(body, "key"), "key")
    assert not signature_is_valid(body, sign(body, "key"), "another key")


@pytest.mark.parametrize(
    ("status", "ok"), [(200, True), (202, True), (204, True), (301, False), (404, False), (503, False)]
)
def test_only_a_2xx_answer_is_a_delivery(status: int, ok: bool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Location": "https://elsewhere.example.org/"})

    notifier = webhook("https://hooks.example.org/T0/B1/tokenpart")
    notifier._client.close()
    notifier._client = httpx.Client(transport=httpx.MockTransport(answer))
    try:
        result = notifier.deliver(make_notification(), make_context())
    finally:
        notifier.close()
    assert result.ok is ok, result.message
    if not ok:
        assert f"HTTP {status} from hooks.example.org" in result.message


def test_errors_name_the_host_never_the_path_or_secret() -> None:
    port = free_port()  # nothing listens there
    notifier = webhook(f"http://127.0.0.1:{port}/hooks/T0/tokenpart", timeout=1)
    try:
        result = notifier.deliver(make_notification(), make_context())
    finally:
        notifier.close()
    assert not result.ok
    assert result.message.startswith(f"cannot reach 127.0.0.1:{port}")
    assert "tokenpart" not in result.message and SECRET not in result.message


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"url": "ftp://hooks.example.org/x", "secret": "k"}, "http:// or https://"),
        ({"url": "hooks.example.org/x", "secret": "k"}, "http:// or https://"),
        ({"url": "https://hooks.example.org/x"}, "secret"),
        ({"url": "https://hooks.example.org/x", "secret": "  "}, "must not be empty"),
        ({"url": "https://hooks.example.org/x", "secret": "k", "timeout": 0}, "timeout"),
        ({"url": "https://hooks.example.org/x", "secret": "k", "timeout": "5m"}, "timeout"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebhookOptions.model_validate(options)
    assert problem in str(caught.value)


def test_defaults_and_durations() -> None:
    assert WebhookOptions.model_validate({"url": "https://h.example.org/", "secret": "k"}).timeout == 10.0
    assert (
        WebhookOptions.model_validate({"url": "https://h.example.org/", "secret": "k", "timeout": "500ms"}).timeout
        == 0.5
    )
    assert "k" not in repr(WebhookOptions.model_validate({"url": "https://h.example.org/", "secret": "k"}).secret)


# -- Standard Webhooks: what a receiver's library accepts and refuses ---------------------------------------


def deliver(receiver: Receiver, secret: str = SECRET, clock: Any = time.time, delivery_id: str = "d-7") -> Any:
    notifier = webhook(receiver.url, secret=secret, clock=clock)
    try:
        result = notifier.deliver(make_notification(), make_context(delivery_id=delivery_id))
    finally:
        notifier.close()
    assert result.ok, result.message
    return receiver.received()[-1]


def test_the_standardwebhooks_library_verifies_a_delivery(receiver: Receiver) -> None:
    request = deliver(receiver)
    assert request.standard_error is None
    signature = request.headers["webhook-signature"]
    assert signature.startswith("v1,")
    assert len(base64.b64decode(signature.removeprefix("v1,"))) == 32  # an HMAC-SHA256


def test_a_whsec_secret_is_used_as_the_convention_says() -> None:
    key = bytes(range(24))
    secret = "whsec_" + base64.b64encode(key).decode()
    assert signing_key(secret) == key
    receiver = Receiver(free_port(), secret).start()
    try:
        request = deliver(receiver, secret=secret)
    finally:
        receiver.close()
    assert request.standard_error is None
    assert standard_secret(secret) == secret


def test_a_plain_secret_is_its_utf8_bytes_which_a_receiver_passes_base64_encoded() -> None:
    assert signing_key("s3cret") == b"s3cret"
    assert standard_secret("s3cret") == "whsec_" + base64.b64encode(b"s3cret").decode()


def test_a_stale_delivery_is_refused(receiver: Receiver) -> None:
    request = deliver(receiver, clock=lambda: time.time() - 6 * 60)
    assert request.standard_error == "Message timestamp too old"
    assert request.signature_ok  # the legacy signature cannot tell: it signs the body only


def test_a_captured_delivery_replayed_with_a_fresh_timestamp_is_refused(receiver: Receiver) -> None:
    captured = deliver(receiver, clock=lambda: time.time() - 6 * 60)
    replayed = {**captured.headers, "webhook-timestamp": str(int(time.time()))}
    assert standard_error(captured.body, replayed, SECRET) == "No matching signature found"
    tampered = {**captured.headers, "webhook-id": "another", "webhook-timestamp": str(int(time.time()))}
    assert standard_error(captured.body, tampered, SECRET) == "No matching signature found"


def test_retries_keep_the_webhook_id_and_sign_a_new_timestamp(receiver: Receiver) -> None:
    first = deliver(receiver, clock=lambda: 1_900_000_000.0)
    second = deliver(receiver, clock=lambda: 1_900_000_060.0)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "d-7"
    assert (first.headers["webhook-timestamp"], second.headers["webhook-timestamp"]) == ("1900000000", "1900000060")
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
    assert second.headers["webhook-signature"] == standard_signature(SECRET.encode(), "d-7", 1_900_000_060, second.body)


@pytest.mark.parametrize("secret", ["whsec_not*base64", "whsec_"])
def test_a_whsec_secret_that_is_not_base64_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="whsec_"):
        WebhookOptions.model_validate({"url": "https://hooks.example.org/x", "secret": secret})
