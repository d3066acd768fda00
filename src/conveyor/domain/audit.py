"""The audit trail's rules: which events are operator actions, and the hash chain that makes the trail
tamper-evident. Pure: no storage, no clock.

**Operator actions.** Whatever a person or a tool asks conveyor to do (cut a release, deploy, promote,
unblock, ...) is recorded as an Event that carries the action's name (``action``) and the operator's
``reason`` besides the event's usual fields. :data:`OPERATOR_ACTIONS` is the one list of them: a new
command adds its :class:`OperatorAction` there and passes it to ``record_events(..., action=...)``.
The event kind says what happened (``hold.lifted``), the action says who asked for it (``unblock``): the
same kind written by conveyor itself (a block lifted by a fix-forward) carries no action and is not an
operator action.

**The chain.** Every event, in the order it was sealed (``chain_seq`` 1, 2, 3, ...), stores::

    chain_hash = hex(SHA-256(previous chain_hash + canonical JSON of the event))

where the previous hash is 64 lowercase hex characters (:data:`GENESIS`, 64 zeros, before the first event)
encoded as ASCII, followed by the canonical JSON's UTF-8 bytes. The canonical JSON of an event is one JSON
object with exactly the keys of :class:`EventContent` (``action``, ``actor``, ``app``, ``at``,
``deployment_id``, ``environment``, ``id``, ``kind``, ``message``, ``payload``, ``reason``,
``release_id``): keys sorted at every depth, no whitespace (separators ``,`` and ``:``), non-ASCII
characters written as themselves, absent values as ``null``, and ``at`` in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fractional digits). That is
``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.

Changing an event's content or hash breaks the chain at that event; deleting one breaks it at the next;
deleting the newest ones disagrees with the chain's head (kept beside the events). :class:`ChainWalk`
checks a stream of stored events in chain order and names the first that breaks.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = "0" * 64  # the "previous hash" of the first event in the chain


@dataclass(frozen=True)
class OperatorAction:
    """One thing an operator can ask for, recorded as an event of one of ``kinds`` carrying ``name`` and a
    reason (required when ``reason_required``)."""

    name: str
    kinds: tuple[str, ...]
    reason_required: bool
    description: str


RELEASE = OperatorAction("release", ("release.created",), False, "cut a release")
DEPLOY = OperatorAction("deploy", ("deployment.created",), False, "queue a deployment of a chosen release")
PROMOTE = OperatorAction("promote", ("deployment.created",), False, "promote past the manual tier's gate")
ROLLBACK = OperatorAction("rollback", ("rollback.queued",), True, "roll back and veto the release rolled back from")
CANCEL = OperatorAction(
    "cancel", ("deployment.cancelled", "cancel.requested"), True, "cancel a queued or running deployment"
)
BLOCK = OperatorAction("block", ("hold.created",), True, "block an app by hand")
UNBLOCK = OperatorAction("unblock", ("hold.lifted",), True, "lift a block")
FREEZE = OperatorAction("freeze", ("hold.created",), True, "freeze automatic starts")
STOP = OperatorAction("stop", ("hold.created",), True, "stop the line in an environment")
UNFREEZE = OperatorAction("unfreeze", ("hold.lifted",), False, "lift a freeze or a stop")
UNVETO = OperatorAction("unveto", ("hold.lifted",), True, "lift a veto")
FORCE = OperatorAction("force", ("hold.overridden",), True, "break glass: deploy or promote past holds")

# Every operator action, in the order the docs list them. A new command adds its action here.
OPERATOR_ACTIONS: tuple[OperatorAction, ...] = (
    RELEASE,
    DEPLOY,
    PROMOTE,
    ROLLBACK,
    CANCEL,
    BLOCK,
    UNBLOCK,
    FREEZE,
    STOP,
    UNFREEZE,
    UNVETO,
    FORCE,
)


def check_action(action: OperatorAction, kind: str, reason: str | None) -> None:
    """Refuse (``ValueError``: a programming error) an action that is not registered, recorded under
    another kind, or without the reason it requires. Operations check reasons first, in words."""
    if action not in OPERATOR_ACTIONS:
        raise ValueError(f"{action.name!r} is not in OPERATOR_ACTIONS")
    if kind not in action.kinds:
        raise ValueError(
            f"the {action.name} action is recorded as {' or '.join(map(repr, action.kinds))}, not {kind!r}"
        )
    if action.reason_required and not (reason or "").strip():
        raise ValueError(f"the {action.name} action needs a reason")


@dataclass(frozen=True)
class EventContent:
    """What the chain covers of one stored event: every field but its chain position and hash."""

    id: int
    kind: str
    app: str | None
    environment: str | None
    release_id: int | None
    deployment_id: int | None
    actor: str
    at: datetime
    message: str
    payload: dict[str, Any] = field(default_factory=dict)
    action: str | None = None
    reason: str | None = None

    def canonical(self) -> bytes:
        # the fields as they are, not dataclasses.asdict: that deep-copies the payload first
        return canonical_json({name: getattr(self, name) for name in CONTENT_KEYS})


CONTENT_KEYS = tuple(f.name for f in fields(EventContent))


def canonical_json(content: dict[str, Any]) -> bytes:
    """The canonical JSON of an event's content as a verifier reads it back: ``content`` has exactly the
    keys of :class:`EventContent`, with ``at`` a datetime. Events are hashed from the values written.

    Content made only of text, integers, booleans, nulls, lists and text-keyed objects is written by
    orjson, whose output for those is byte for byte the standard library's (tested on every code point)
    at a tenth of the cost. Anything else (a float, whose exponent orjson spells differently; an integer
    key, which comes back as text) goes through the standard library, the payload first put through
    JSON once, as storing and reading it back would."""
    values = {**content, "at": utc_text(content["at"])}
    # the other fields are text, integers and nulls by type: only the payload can hold anything else
    if _plain(values["payload"]):
        return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
    values["payload"] = json.loads(json.dumps(values["payload"]))
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_SCALARS = (str, int, bool, type(None))


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return kind is not int or -(2**63) <= value < 2**64
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False


def utc_text(at: datetime) -> str:
    """``at`` in UTC with six fractional digits and a ``Z``; a naive time is taken to be UTC already."""
    utc = at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def chain_hash(previous: str, canonical: bytes) -> str:
    return hashlib.sha256(previous.encode("ascii") + canonical).hexdigest()


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store holds it: its content, and where and how it was sealed into the chain."""

    content: EventContent
    seq: int | None
    hash: str | None


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain first breaks: the event (or None for the head), and what is wrong, in words."""

    event_id: int | None
    seq: int | None
    problem: str


@dataclass(frozen=True)
class Anchor:
    """A chain position and the hash it had, recorded outside the database (``SEQ:HASH``), which the
    chain must still pass through: the one thing that shows a history rewritten with recomputed hashes."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        match = re.fullmatch(r"\s*(\d+):([0-9a-fA-F]{64})\s*", text)
        if not match or int(match.group(1)) < 1:
            raise ValueError(
                f"invalid anchor {text!r}: give POSITION:SHA256, as `conveyor audit verify` prints the head"
            )
        return cls(int(match.group(1)), match.group(2).lower())


@dataclass
class ChainWalk:
    """Checks stored events one at a time in chain order (so a long trail streams), then the head.

    ``broken`` is the first break found; once set, later events are not looked at."""

    anchor: Anchor | None = None
    verified: int = 0
    previous: str = GENESIS
    seq: int = 0
    broken: ChainBreak | None = None

    def step(self, event: StoredEvent) -> None:
        if self.broken is not None:
            return
        c = event.content
        if event.seq is None or event.hash is None:
            self.broken = ChainBreak(c.id, None, "it was never sealed into the chain (written around conveyor?)")
            return
        if event.seq != self.seq + 1:
            gap = (
                f"position {self.seq + 1}" if event.seq == self.seq + 2 else f"positions {self.seq + 1}-{event.seq - 1}"
            )
            self.broken = ChainBreak(c.id, event.seq, f"the event(s) before it in the chain ({gap}) are missing")
            return
        if chain_hash(self.previous, c.canonical()) != event.hash:
            self.broken = ChainBreak(
                c.id,
                event.seq,
                "its hash does not match its content and the hash before it (changed after it was recorded)",
            )
            return
        if self.anchor is not None and event.seq == self.anchor.seq and event.hash != self.anchor.hash:
            self.broken = ChainBreak(
                c.id,
                event.seq,
                f"the chain no longer has the expected hash {self.anchor.hash} here (history was rewritten)",
            )
            return
        self.verified += 1
        self.previous, self.seq = event.hash, event.seq

    def finish(self, head_seq: int | None, head_hash: str | None) -> ChainBreak | None:
        """The walk's verdict, given the chain's head (None when no head is stored)."""
        if self.broken is not None:
            return self.broken
        if self.anchor is not None and self.anchor.seq > self.seq:
            return ChainBreak(None, self.seq, f"the chain ends before the expected position {self.anchor.seq}")
        if head_seq is None:
            if self.seq == 0:
                return None
            return ChainBreak(None, None, "the chain's head record is missing")
        if head_seq != self.seq:
            return ChainBreak(
                None,
                head_seq,
                f"the newest event(s) are missing: the head is at position {head_seq}, the last event at {self.seq}",
            )
        if head_hash != self.previous:
            return ChainBreak(None, head_seq, "the chain's head does not match the newest event's hash")
        return None
