"""The ``fake`` notifier: records deliveries instead of sending them, for tests and benchmarks.

Every call is appended to ``deliveries`` (thread-safe), successful or not. It fails a notification's
first ``fail_first`` attempts (``outcome: fail`` fails them all), sleeps ``duration`` seconds before
answering, and with ``threaded: true`` behaves like a threaded chat notifier: the first delivery of a
release remembers ``thread`` (its own delivery id) and later ones report the thread they found in
``ctx.memory``. With ``record`` set, each call is also appended as one JSON line to that file.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, Notifier

__all__ = ["FakeDelivery", "FakeNotifier", "FakeNotifierOptions"]


class FakeNotifierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["succeed", "fail"] = "succeed"
    fail_first: Annotated[int, Field(ge=0)] = 0
    duration: Annotated[float, Field(ge=0)] = 0.0
    threaded: bool = False
    record: str | None = None


@dataclass(frozen=True)
class FakeDelivery:
    notification: Notification
    ctx: DeliveryContext
    ok: bool
    thread: str | None  # with ``threaded``: the thread this message went to


class FakeNotifier(Notifier):
    name = "fake"
    Options = FakeNotifierOptions

    def __init__(self, options: BaseModel) -> None:
        super().__init__(options)
        self.opts = cast(FakeNotifierOptions, options)
        self.deliveries: list[FakeDelivery] = []
        self._lock = threading.Lock()

    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        if self.opts.duration:
            time.sleep(self.opts.duration)
        ok = self.opts.outcome == "succeed" and ctx.attempt > self.opts.fail_first
        thread = ctx.memory.get("thread", ctx.delivery_id) if self.opts.threaded else None
        with self._lock:
            self.deliveries.append(FakeDelivery(notification, ctx, ok, thread))
            if self.opts.record:
                self._append_record(notification, ctx, ok, thread)
        if not ok:
            return DeliveryResult(False, f"fake failure of attempt {ctx.attempt}")
        remember = {"thread": thread} if thread is not None else {}
        return DeliveryResult(True, "recorded", remember=remember)

    def delivered(self) -> list[FakeDelivery]:
        with self._lock:
            return [d for d in self.deliveries if d.ok]

    def _append_record(self, notification: Notification, ctx: DeliveryContext, ok: bool, thread: str | None) -> None:
        assert self.opts.record is not None
        line = {
            "delivery_id": ctx.delivery_id,
            "attempt": ctx.attempt,
            "ok": ok,
            "thread": thread,
            "notification": notification.to_json(),
        }
        with Path(self.opts.record).open("a", encoding="utf-8") as out:
            out.write(json.dumps(line, sort_keys=True) + "\n")
