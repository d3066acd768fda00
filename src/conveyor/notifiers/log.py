"""The ``log`` notifier: one JSON line on standard error per notification.

Each line is ``{"notifier": <name>, "delivery_id": ..., "notification": <the payload>}``, written whole
and flushed, so a log shipper can pick notifications out of a process's output. Writing a line cannot
fail in a way a retry would fix, so every delivery succeeds.
"""

from __future__ import annotations

import json
import sys
import threading

from conveyor.notifiers.base import DeliveryContext, DeliveryResult, Notification, Notifier

__all__ = ["LogNotifier"]

_write_lock = threading.Lock()


class LogNotifier(Notifier):
    name = "log"

    def deliver(self, notification: Notification, ctx: DeliveryContext) -> DeliveryResult:
        line = json.dumps(
            {"notifier": ctx.notifier, "delivery_id": ctx.delivery_id, "notification": notification.to_json()},
            sort_keys=True,
            default=str,
        )
        with _write_lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        return DeliveryResult(True, "written to stderr")
