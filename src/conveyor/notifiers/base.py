"""The notifier interface: tell the outside world about one event.

The sender (:mod:`conveyor.notify.sender`) calls :meth:`Notifier.deliver` from its own thread pool, far
from any deployment: a notifier may be slow or fail and no deploy waits for it. Delivery is
at-least-once: a delivery that timed out, or whose sender died, is tried again with the same
``ctx.delivery_id``, so a notifier (or its receiver) de-duplicates on that id. A notifier never raises
for what it delivers to: a refused connection, a timeout or a ``500`` is ``DeliveryResult(ok=False, ...)``
and the sender retries later. It must be safe to call from several threads at once.

One notifier gets one release's notifications in event order, one at a time: the next is handed over
only once the previous one was delivered (or given up). That is what lets a chat notifier thread the
messages of one release: the first message returns the thread it started in ``DeliveryResult.remember``
and every later message of that release finds it in ``ctx.memory``.

Example, a chat notifier that threads messages per release::

    class ChatOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        channel: str
        token: str

    class ChatNotifier(Notifier):
        name = "chat"
        Options = ChatOptions

        def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
            opts = cast(ChatOptions, self.options)
            thread = ctx.memory.get("thread")  # None for the first message of a release
            try:
                reply = post_message(opts.channel, opts.token, notification.message, thread=thread)
            except ChatError as exc:
                return DeliveryResult(ok=False, message=str(exc))
            return DeliveryResult(ok=True, remember={"thread": thread or reply.thread_id})

Register it under the ``conveyor.notifiers`` entry-point group; config then accepts
``notifiers: {team-chat: {type: chat, channel: ..., token: ${CHAT_TOKEN}}}``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from conveyor.config.resolved import Config

__all__ = ["DeliveryContext", "DeliveryResult", "NoOptions", "Notification", "Notifier", "ReleaseRef"]


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ReleaseRef:
    id: int  # the thread key: every notification about one release carries the same id
    label: str
    sha: str


@dataclass(frozen=True)
class Notification:
    """One event as receivers see it; :meth:`to_json` is the documented payload."""

    id: int  # the event's id: increases in event order
    kind: str
    at: datetime
    actor: str
    app: str | None
    environment: str | None
    release: ReleaseRef | None
    deployment_id: int | None
    message: str
    team: str | None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        release = self.release
        return {
            "id": self.id,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "app": self.app,
            "environment": self.environment,
            "release": {"id": release.id, "label": release.label, "sha": release.sha} if release else None,
            "deployment_id": self.deployment_id,
            "message": self.message,
            "team": self.team,
            "data": dict(self.data),
        }

    def body(self) -> bytes:
        """The payload as compact UTF-8 JSON: the same bytes on every retry."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True)
class DeliveryContext:
    """What the sender knows about this delivery.

    ``delivery_id`` is the same on every attempt of one notification to one notifier; ``attempt`` is 1
    on the first try. ``memory`` is what this notifier remembered for the notification's release
    (empty when there is none yet, or the notification has no release).
    """

    notifier: str  # the configured name, e.g. "team-chat"
    delivery_id: str
    attempt: int = 1
    memory: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryResult:
    """``ok`` when the receiver took the notification. ``remember`` is merged into the release's memory
    (ignored for notifications without a release), after a failed attempt too: what a notifier did
    before it failed (a GitHub deployment created, its status not yet posted) is not done again on the
    retry. ``message`` says what went wrong, or what happened."""

    ok: bool
    message: str = ""
    remember: Mapping[str, str] = field(default_factory=dict)


class Notifier(ABC):
    """Delivers notifications somewhere. Subclasses set ``name`` (their type) and ``Options``.

    The sender makes one instance per configured notifier, with its validated options, and calls
    :meth:`close` when it stops.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    # The event kinds it is sent when its config lists no ``events``; None: the kinds people want to hear.
    default_events: ClassVar[frozenset[str] | None] = None
    # A top-level config section it cannot work without (``github``); naming it without is a config error.
    needs_section: ClassVar[str | None] = None
    # True: it gets one app's notifications in event order across releases, not only one release's (a
    # notifier that reports what runs where, whose report of a newer release supersedes an older one's).
    ordered_by_app: ClassVar[bool] = False

    def __init__(self, options: BaseModel) -> None:
        self.options = options

    @classmethod
    def for_config(cls, options: BaseModel, config: Config) -> Notifier:
        """The instance the sender uses. A notifier that needs more than its options (the ``github``
        notifier uses the top-level ``github:`` credentials) overrides this. Default: ``cls(options)``."""
        return cls(options)

    @classmethod
    def apps_concerned(cls, config: Config) -> frozenset[str] | None:
        """The apps whose events this notifier gets, whatever the teams' ``notify`` lists and ``global``
        say (the ``github`` notifier: every app with ``github`` set, and no other); None: routed as usual."""
        return None

    @abstractmethod
    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        """Deliver one notification. Never raises for a failed delivery: return ``ok=False``."""

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately not abstract
        """Release connections and files; called once, when the sender stops. Default: nothing."""
