"""Our own parsing and grouping, table by table: compressed bodies within caps (bombs included), envelopes
with and without lengths, the grouping rule and the spike rule."""

from __future__ import annotations

import gzip
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest

from conveyor.config.resolved import ErrorRateLimit
from conveyor.domain.error_groups import group
from conveyor.domain.error_spikes import SpikeRule, is_spike
from conveyor.error_intake.bodies import BodyError, TooLarge, decode
from conveyor.error_intake.envelopes import EnvelopeError, parse_envelope
from conveyor.error_intake.rate_limits import RateLimits

MB = 1024 * 1024
COMPRESS = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_a_decompression_bomb_is_refused_at_the_cap(encoding: str) -> None:
    bomb = COMPRESS[encoding](b"\0" * (200 * MB))
    assert len(bomb) < 300 * 1024
    with pytest.raises(TooLarge):
        decode(bomb, encoding, 1 * MB)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity", None])
def test_bodies_decode_within_the_cap_and_truncated_ones_are_refused(encoding: str | None) -> None:
    data = b'{"event_id": "x"}\n' * 1000
    body = COMPRESS[encoding](data) if encoding in COMPRESS else data
    assert decode(body, encoding, len(data)) == data
    with pytest.raises(TooLarge):
        decode(body, encoding, len(data) - 1)
    if encoding in COMPRESS:
        with pytest.raises(BodyError):
            decode(body[: len(body) // 2], encoding, MB)


def test_raw_deflate_and_unknown_encodings() -> None:
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = raw.compress(b"hello") + raw.flush()
    assert decode(body, "deflate", 10) == b"hello"
    with pytest.raises(BodyError, match="not one of"):
        decode(b"x", "zstd", 10)
    with pytest.raises(BodyError):
        decode(b"not gzip at all", "gzip", 10)


def test_envelope_items_with_and_without_length() -> None:
    event = b'{"event_id":"abc","message":"hi"}'
    body = b"\n".join(
        [
            b'{"event_id":"abc","sent_at":"2026-11-29T09:00:00Z"}',
            b'{"type":"event","length":%d}' % len(event),
            event,
            b'{"type":"attachment","length":5}',
            b"a\nb\nc",
            b'{"type":"session"}',
            b'{"started":"2026-11-29T09:00:00Z"}',
            b'{"type":"event"}',
            b'{"message":"second"}',
        ]
    )
    envelope = parse_envelope(body)
    assert [i.type for i in envelope.items] == ["event", "attachment", "session", "event"]
    assert envelope.items[1].payload == b"a\nb\nc"
    assert [e["message"] for e, _ in envelope.events()] == ["hi", "second"]
    assert parse_envelope(b'{}\n{"type":"transaction","length":2}\n{}').items[0].payload == b"{}"
    assert parse_envelope(b"{}").items == ()


@pytest.mark.parametrize(
    "body",
    [
        b"not json\n",
        b"[]\n",
        b'{}\n{"length":2}\n{}',
        b'{}\n{"type":"event","length":99}\n{}',
        b'{}\n{"type":"event"}\n[1]',
    ],
)
def test_what_is_not_an_envelope_is_refused(body: bytes) -> None:
    with pytest.raises(EnvelopeError):
        envelope = parse_envelope(body)
        list(envelope.events())


def exception(kind: str, *frames: tuple[str, str, bool], value: str = "v") -> dict[str, Any]:
    return {
        "type": kind,
        "value": value,
        "stacktrace": {"frames": [{"module": m, "function": f, "in_app": app, "lineno": 1} for m, f, app in frames]},
    }


def test_grouping_by_exception_type_and_in_app_frames() -> None:
    views = ("app.views", "show", True)
    library = ("django.core", "dispatch", False)
    one = group({"exception": {"values": [exception("KeyError", library, views, value="'a'")]}})
    same = group({"exception": {"values": [exception("KeyError", views, value="'b'")]}})  # value and library differ
    other_type = group({"exception": {"values": [exception("ValueError", library, views)]}})
    other_frame = group({"exception": {"values": [exception("KeyError", ("app.views", "edit", True))]}})
    chained = group({"exception": {"values": [exception("OSError", views), exception("KeyError", views)]}})
    assert one.fingerprint == same.fingerprint == chained.fingerprint
    assert len({one.fingerprint, other_type.fingerprint, other_frame.fingerprint}) == 3
    assert (one.title, one.culprit, one.level) == ("KeyError: 'a'", "app.views in show", "error")
    no_app_frames = group({"exception": {"values": [exception("KeyError", library)]}})
    assert no_app_frames.culprit == "django.core in dispatch"


def test_grouping_by_message_template_and_by_the_events_own_fingerprint() -> None:
    one = group({"logentry": {"message": "user %s missing", "formatted": "user 1 missing"}, "level": "warning"})
    two = group({"logentry": {"message": "user %s missing", "formatted": "user 2 missing"}})
    assert one.fingerprint == two.fingerprint and one.title == "user 1 missing" and one.level == "warning"
    assert group({"message": "a"}).fingerprint != group({"message": "b"}).fingerprint
    custom = group({"message": "a", "fingerprint": ["db-down"]})
    assert custom.fingerprint == group({"message": "b", "fingerprint": ["db-down"]}).fingerprint
    with_default = group({"message": "a", "fingerprint": ["{{ default }}", "eu"]})
    assert with_default.fingerprint != group({"message": "a", "fingerprint": ["{{default}}", "us"]}).fingerprint
    assert with_default.fingerprint == group({"message": "a", "fingerprint": ["{{ Default }}", "eu"]}).fingerprint
    assert group({}).title == "<no message>"


NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
RULE = SpikeRule(min_events=10, factor=5.0, baseline=3600.0, cooldown=3600.0)


@pytest.mark.parametrize(
    ("minute", "baseline", "last_spike_minutes_ago", "spike"),
    [
        (10, 0, None, True),  # a new issue's first busy minute
        (9, 0, None, False),  # below min_events
        (50, 600, None, True),  # 5x an average of 10/min
        (49, 600, None, False),  # just under 5x
        (50, 600, 30, False),  # spiked half an hour ago: cooling down
        (50, 600, 60, True),  # cooled down
    ],
)
def test_the_spike_rule(minute: int, baseline: int, last_spike_minutes_ago: int | None, spike: bool) -> None:
    last = NOW - timedelta(minutes=last_spike_minutes_ago) if last_spike_minutes_ago is not None else None
    assert is_spike(RULE, minute_events=minute, baseline_events=baseline, last_spike_at=last, now=NOW) is spike


def test_the_rate_limit_counts_per_key_in_fixed_windows() -> None:
    now = [100.0]
    limits = RateLimits(ErrorRateLimit(envelopes=2, per=60.0), clock=lambda: now[0])
    assert [limits.retry_after(1), limits.retry_after(1), limits.retry_after(2)] == [None, None, None]
    now[0] = 130.2
    assert limits.retry_after(1) == 30
    now[0] = 160.0
    assert limits.retry_after(1) is None
