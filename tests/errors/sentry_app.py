"""A small app that reports to conveyor with the real sentry-sdk: ``python sentry_app.py SCENARIO``.

The DSN comes from ``SENTRY_DSN``. Every request the SDK's transport sends is printed as one JSON line
``{"status": ..., "encoding": ...}`` on stdout (the transport's pool is wrapped, nothing else changes),
so a test sees what went over the wire: compressed bodies, and no request during a rate limit.
"""

from __future__ import annotations

import json
import os
import sys

import sentry_sdk
from sentry_sdk.transport import HttpTransport


class RecordingTransport(HttpTransport):
    def _make_pool(self):  # type: ignore[no-untyped-def]
        pool = super()._make_pool()
        original = pool.request

        def request(method, url, body=None, headers=None, **kwargs):  # type: ignore[no-untyped-def]
            response = original(method, url, body=body, headers=headers, **kwargs)
            encoding = (headers or {}).get("Content-Encoding")
            print(json.dumps({"status": response.status, "encoding": encoding, "url": url}), flush=True)
            return response

        pool.request = request
        return pool


def handled() -> None:
    raise ValueError("bad value 42")


def checkout(order: int) -> None:
    raise LookupError(f"no order {order}")


def main(scenario: str) -> None:
    experiments = {"transport_compression_algo": os.environ["COMPRESSION"]} if os.environ.get("COMPRESSION") else {}
    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"],
        release=os.environ.get("RELEASE", "v1"),
        environment="staging",
        transport=RecordingTransport,
        send_client_reports=False,
        _experiments=experiments,
    )
    if scenario == "errors":
        for order in (1, 2):
            try:
                checkout(order)
            except LookupError:
                sentry_sdk.capture_exception()
        try:
            handled()
        except ValueError:
            sentry_sdk.capture_exception()
        sentry_sdk.capture_message("cache miss for user u1")
        sentry_sdk.flush()
        raise KeyError("unhandled")  # the SDK's excepthook sends it, and flushes at exit
    if scenario == "flood":
        for n in range(int(os.environ.get("MESSAGES", "6"))):
            sentry_sdk.capture_message(f"flood {n}")
            sentry_sdk.flush()


if __name__ == "__main__":
    main(sys.argv[1])
