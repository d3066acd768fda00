"""The audit chain's rules on their own: canonical JSON byte for byte, the hash, the walk that names the
first break, the operator-action registry, and ``--since``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from conveyor.audit_trail import BadSince, parse_since
from conveyor.domain.audit import (
    DEPLOY,
    GENESIS,
    OPERATOR_ACTIONS,
    UNBLOCK,
    Anchor,
    ChainBreak,
    ChainWalk,
    EventContent,
    OperatorAction,
    StoredEvent,
    chain_hash,
    check_action,
)

AT = datetime(2026, 11, 29, 14, 2, 3, 4005, tzinfo=UTC)


def content(i: int, **changes: object) -> EventContent:
    base = EventContent(
        id=i,
        kind="hold.lifted",
        app="shop",
        environment="production",
        release_id=3,
        deployment_id=None,
        actor="cli:operator",
        at=AT + timedelta(seconds=i),
        message="fixed the database by hand",
        payload={"kind": "block", "hold_id": 9},
        action="unblock",
        reason="fixed the database by hand",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def chained(contents: list[EventContent]) -> list[StoredEvent]:
    events, previous = [], GENESIS
    for seq, c in enumerate(contents, start=1):
        previous = chain_hash(previous, c.canonical())
        events.append(StoredEvent(c, seq, previous))
    return events


def test_canonical_json_is_sorted_compact_utf8_with_utc_microseconds() -> None:
    c = content(1, message="déployé ✓", at=datetime(2026, 11, 29, 15, 2, 3, tzinfo=timezone(timedelta(hours=1))))
    assert (
        c.canonical()
        == (
            '{"action":"unblock","actor":"cli:operator","app":"shop","at":"2026-11-29T14:02:03.000000Z",'
            '"deployment_id":null,"environment":"production","id":1,"kind":"hold.lifted",'
            '"message":"déployé ✓","payload":{"hold_id":9,"kind":"block"},"reason":"fixed the database by hand",'
            '"release_id":3}'
        ).encode()
    )


def spec(c: EventContent) -> bytes:
    """The canonical JSON exactly as the module documents it, read back from storage."""
    values = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}
    values["at"] = c.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    values["payload"] = json.loads(json.dumps(values["payload"]))
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"text": "".join(chr(cp) for cp in range(0x2FF)) + "\u2028\U0001f600\uffff\"'\\"},
        {"nested": {"é": [1, -(2**63), 2**64 - 1, None, True, False, (2, "tuple")], "Z": {}, "\U0001f600": 1}},
        {"floats": [0.1, 1e16, 1e-07, 123456789012345680.0, -0.0]},  # the standard library spells these
        {"wide": 2**64, "narrow": -(2**63) - 1},  # past orjson's 64 bits
        {"codes": {200: 3, 50: 1}},  # integer keys: read back as text, sorted as text
    ],
)
def test_canonical_json_is_the_documented_form_byte_for_byte(payload: dict[str, object]) -> None:
    for text in ("plain", "ünï\x00\x1f\x7f\ud7ff", None):
        c = content(7, payload=payload, message=text or "", reason=text)
        assert c.canonical() == spec(c)


def test_a_naive_time_is_taken_as_utc() -> None:
    naive = content(1, at=(AT + timedelta(seconds=1)).replace(tzinfo=None))
    assert naive.canonical() == content(1).canonical()


def test_the_hash_is_sha256_of_the_previous_hex_and_the_canonical_bytes() -> None:
    c = content(1)
    assert chain_hash(GENESIS, c.canonical()) == hashlib.sha256(("0" * 64).encode() + c.canonical()).hexdigest()


def test_an_intact_chain_verifies_every_event_and_matches_its_head() -> None:
    events = chained([content(i) for i in range(1, 6)])
    walk = ChainWalk()
    for e in events:
        walk.step(e)
    assert walk.finish(5, events[-1].hash) is None
    assert walk.verified == 5


CHANGED = "its hash does not match its content and the hash before it (changed after it was recorded)"


def walk_of(events: list[StoredEvent], head_seq: int, head_hash: str | None) -> tuple[int | None, str]:
    walk = ChainWalk()
    for e in events:
        walk.step(e)
    broken = walk.finish(head_seq, head_hash)
    assert broken is not None
    return broken.event_id, broken.problem


@pytest.mark.parametrize(
    "change", [{"message": "nothing to see"}, {"payload": {"kind": "freeze", "hold_id": 9}}, {"actor": "cli:root"}]
)
def test_an_edited_event_is_named(change: dict[str, object]) -> None:
    events = chained([content(i) for i in range(1, 6)])
    events[2] = dataclasses.replace(events[2], content=dataclasses.replace(events[2].content, **change))  # type: ignore[arg-type]
    assert walk_of(events, 5, events[-1].hash) == (3, CHANGED)


def test_an_edit_with_a_recomputed_hash_is_named_at_the_next_event() -> None:
    contents = [content(i) for i in range(1, 6)]
    events = chained(contents)
    forged = dataclasses.replace(contents[2], message="nothing to see")
    events[2] = StoredEvent(forged, 3, chain_hash(events[1].hash or "", forged.canonical()))
    assert walk_of(events, 5, events[-1].hash)[0] == 4


def test_a_deleted_event_is_named_at_the_one_after_it() -> None:
    events = chained([content(i) for i in range(1, 6)])
    del events[1]
    assert walk_of(events, 5, events[-1].hash) == (3, "the event(s) before it in the chain (position 2) are missing")


def test_deleted_newest_events_break_at_the_head() -> None:
    events = chained([content(i) for i in range(1, 6)])
    head = events[-1].hash
    assert walk_of(events[:3], 5, head) == (
        None,
        "the newest event(s) are missing: the head is at position 5, the last event at 3",
    )


def test_an_unsealed_event_is_named() -> None:
    assert walk_of([StoredEvent(content(1), None, None)], 0, GENESIS) == (
        1,
        "it was never sealed into the chain (written around conveyor?)",
    )


def test_every_action_is_unique_and_checked() -> None:
    assert len({a.name for a in OPERATOR_ACTIONS}) == len(OPERATOR_ACTIONS)
    check_action(DEPLOY, "deployment.created", None)
    with pytest.raises(ValueError, match=r"recorded as 'deployment\.created'"):
        check_action(DEPLOY, "hold.lifted", None)
    with pytest.raises(ValueError, match="needs a reason"):
        check_action(UNBLOCK, "hold.lifted", "  ")
    with pytest.raises(ValueError, match="not in OPERATOR_ACTIONS"):
        check_action(OperatorAction("sneak", ("hold.lifted",), False, ""), "hold.lifted", None)


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-11-28", datetime(2026, 11, 28, tzinfo=UTC)),
        ("2026-11-28T09:30:00Z", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
        ("2026-11-28T10:30:00+01:00", datetime(2026, 11, 28, 9, 30, tzinfo=UTC)),
    ],
)
def test_since_takes_a_time_or_an_age(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "-1h", "3 fortnights", "", "999999999w"])
def test_since_refuses_anything_else_in_one_sentence(text: str) -> None:
    with pytest.raises(BadSince, match=r"^--since .* is not a time: give ISO 8601"):
        parse_since(text, NOW)


def test_an_anchor_must_still_be_passed_through() -> None:
    events = chained([content(i) for i in range(1, 6)])
    kept = Anchor(3, events[2].hash or "")
    walk = ChainWalk(kept)
    for e in events:
        walk.step(e)
    assert walk.finish(5, events[-1].hash) is None

    forged = chained([content(i, message="rewritten") for i in range(1, 6)])  # every hash recomputed
    walk = ChainWalk(kept)
    for e in forged:
        walk.step(e)
    broken = walk.finish(5, forged[-1].hash)
    assert broken is not None
    assert (broken.event_id, broken.problem) == (
        3,
        f"the chain no longer has the expected hash {kept.hash} here (history was rewritten)",
    )

    short = ChainWalk(Anchor(9, kept.hash))
    for e in events:
        short.step(e)
    assert short.finish(5, events[-1].hash) == ChainBreak(None, 5, "the chain ends before the expected position 9")


def test_an_anchor_is_read_as_it_is_printed() -> None:
    assert Anchor.parse(f"12:{'AB' * 32}") == Anchor(12, "ab" * 32)
    for text in ("12", "0:" + "a" * 64, "12:" + "a" * 63, "x:" + "a" * 64):
        with pytest.raises(ValueError, match="give POSITION:SHA256"):
            Anchor.parse(text)
