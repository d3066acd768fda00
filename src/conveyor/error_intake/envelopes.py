"""Sentry envelopes: a JSON header line, then items, each a JSON header line and a payload.

An item's payload is ``length`` bytes when its header gives a length (a newline may follow), else it runs
to the next newline (or the end). Only items of type ``event`` are error events; every other type
(``transaction``, ``session``, ``sessions``, ``attachment``, ``client_report``, ``check_in``, ``profile``,
``replay_*``, ``span``, ``log``, ...) is accepted and dropped, as an SDK must not be told it sent
something wrong for data this intake does not keep. See https://develop.sentry.dev/sdk/envelopes/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class EnvelopeError(ValueError):
    """The body is not an envelope (or not a JSON event, for ``/store/``); the message says where."""


@dataclass(frozen=True)
class Item:
    type: str
    payload: bytes


@dataclass(frozen=True)
class Envelope:
    header: dict[str, Any]
    items: tuple[Item, ...]

    def events(self) -> Iterator[tuple[dict[str, Any], bytes]]:
        """The error events it carries, decoded, with their JSON as sent."""
        for item in self.items:
            if item.type == "event":
                yield event_from_json(item.payload), item.payload


def parse_envelope(body: bytes) -> Envelope:
    if not body.strip():
        raise EnvelopeError("the body is empty: an envelope starts with its header line")
    header, position = _json_line(body, 0, "the envelope header")
    items: list[Item] = []
    while position < len(body):
        if body[position : position + 1] == b"\n":  # blank lines between items
            position += 1
            continue
        item_header, position = _json_line(body, position, f"the header of item {len(items) + 1}")
        kind = item_header.get("type")
        if not isinstance(kind, str) or not kind:
            raise EnvelopeError(f"item {len(items) + 1}: its header has no type")
        length = item_header.get("length")
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                raise EnvelopeError(f"item {len(items) + 1}: length must be a number of bytes")
            end = position + length
            if end > len(body):
                raise EnvelopeError(f"item {len(items) + 1}: {length} bytes announced, {len(body) - position} sent")
            payload = body[position:end]
            position = end + 1 if body[end : end + 1] == b"\n" else end
        else:
            end = body.find(b"\n", position)
            end = len(body) if end < 0 else end
            payload, position = body[position:end], end + 1
        items.append(Item(kind, payload))
    return Envelope(header, tuple(items))


def event_from_json(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeError("an event is not JSON") from None
    if not isinstance(event, dict):
        raise EnvelopeError("an event is not a JSON object")
    return well_formed(event) if _may_hold_surrogates(payload) else event


def well_formed(value: Any) -> Any:
    """``value`` with each lone surrogate in its text replaced by U+FFFD.

    JSON may escape one (``\\ud800``), and a Python SDK does for text it decoded with
    ``surrogateescape`` (a file name that is not UTF-8, put in a message). No UTF-8 can hold one, so such
    an event could be neither stored nor read back. A pair of escapes that makes one character is kept."""
    if isinstance(value, str):
        return value if value.isascii() else value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {well_formed(k): well_formed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [well_formed(v) for v in value]
    return value


def _may_hold_surrogates(payload: bytes) -> bool:
    """Whether the JSON escapes a surrogate at all (most events do not: no need to walk them)."""
    return b"\\ud" in payload or b"\\uD" in payload


def _json_line(body: bytes, start: int, what: str) -> tuple[dict[str, Any], int]:
    end = body.find(b"\n", start)
    end = len(body) if end < 0 else end
    try:
        value = json.loads(body[start:end]) if end > start else {}
    except (UnicodeDecodeError, ValueError):
        raise EnvelopeError(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"{what} is not a JSON object")
    return (well_formed(value) if _may_hold_surrogates(body[start:end]) else value), end + 1
