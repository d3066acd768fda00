"""Grouping error events into issues, as Sentry does in its simplest form.

An event's group is its :class:`Grouping`: a fingerprint (a hash of the grouping components), a title and a
culprit. The components, in order of preference:

1. the event's own ``fingerprint`` (a list of strings, as ``sentry_sdk.set_fingerprint`` or
   ``scope.fingerprint`` sends it); an entry ``{{ default }}`` stands for the default components below;
2. the exception: the type of the last exception in ``exception.values`` (the one raised, Sentry orders
   a chain oldest first) and the ``module.function`` of each of its in-app stack frames (every frame
   when none is marked in-app; the file name when a frame has no module);
3. the message: its template (``logentry.message``) when there is one, so ``"user %s not found"`` is one
   issue whatever the user, else the formatted message.

Line numbers and exception values are left out on purpose: a change of line or of the value in the
message (an id, a path) is the same issue.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MARKER = re.compile(r"^\{\{\s*default\s*\}\}$", re.IGNORECASE)
MAX_TITLE = 300
LEVELS = ("fatal", "error", "warning", "info", "debug")


@dataclass(frozen=True)
class Grouping:
    fingerprint: str  # 32 hex characters
    title: str
    culprit: str
    level: str


def group(event: Mapping[str, Any]) -> Grouping:
    """The issue ``event`` (a Sentry event payload, already JSON-decoded) belongs to."""
    default = _default_components(event)
    custom = event.get("fingerprint")
    if isinstance(custom, list) and custom and all(isinstance(part, str | int | float) for part in custom):
        components: list[str] = []
        for part in custom:
            text = str(part)
            components.extend(default if DEFAULT_MARKER.match(text.strip()) else [text])
    else:
        components = default
    digest = hashlib.sha256(json.dumps(components, ensure_ascii=False).encode()).hexdigest()[:32]
    return Grouping(digest, _title(event), _culprit(event), _level(event))


def last_exception(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, Mapping) else exception
    if isinstance(values, list):
        found = [v for v in values if isinstance(v, Mapping)]
        return found[-1] if found else None
    return None


def _default_components(event: Mapping[str, Any]) -> list[str]:
    exception = last_exception(event)
    if exception is not None:
        return ["exception", str(exception.get("type") or "Error"), *_frame_names(exception)]
    return ["message", _message_template(event)]


def _frames(exception: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    stacktrace = exception.get("stacktrace")
    frames = stacktrace.get("frames") if isinstance(stacktrace, Mapping) else None
    if not isinstance(frames, list):
        return []
    found = [f for f in frames if isinstance(f, Mapping)]
    in_app = [f for f in found if f.get("in_app") is True]
    return in_app or found


def _frame_names(exception: Mapping[str, Any]) -> list[str]:
    return [_frame_name(frame) for frame in _frames(exception)]


def _frame_name(frame: Mapping[str, Any]) -> str:
    where = frame.get("module") or frame.get("filename") or frame.get("abs_path") or "?"
    return f"{where}.{frame.get('function') or '?'}"


def _message_template(event: Mapping[str, Any]) -> str:
    logentry = event.get("logentry")
    if isinstance(logentry, Mapping):
        template = logentry.get("message") or logentry.get("formatted")
        if isinstance(template, str) and template:
            return template
    message = event.get("message")
    if isinstance(message, Mapping):
        template = message.get("message") or message.get("formatted")
        return str(template) if template else ""
    return str(message) if message else ""


def _formatted_message(event: Mapping[str, Any]) -> str:
    for key in ("logentry", "message"):
        value = event.get(key)
        if isinstance(value, Mapping):
            text = value.get("formatted") or value.get("message")
            if text:
                return str(text)
        elif isinstance(value, str) and value:
            return value
    return ""


def _title(event: Mapping[str, Any]) -> str:
    exception = last_exception(event)
    if exception is not None:
        kind = str(exception.get("type") or "Error")
        value = str(exception.get("value") or "").strip()
        title = f"{kind}: {value.splitlines()[0]}" if value else kind
    else:
        title = _formatted_message(event).strip().split("\n", 1)[0] or "<no message>"
    return title[:MAX_TITLE]


def _culprit(event: Mapping[str, Any]) -> str:
    exception = last_exception(event)
    frames: Sequence[Mapping[str, Any]] = _frames(exception) if exception is not None else []
    if frames:
        frame = frames[-1]
        where = frame.get("module") or frame.get("filename") or "?"
        return f"{where} in {frame.get('function') or '?'}"[:MAX_TITLE]
    for key in ("culprit", "transaction"):
        value = event.get(key)
        if isinstance(value, str) and value:
            return value[:MAX_TITLE]
    return ""


def _level(event: Mapping[str, Any]) -> str:
    level = event.get("level")
    if isinstance(level, str) and level.lower() in LEVELS:
        return level.lower()
    return "warning" if level == "warn" else "error"
