"""The real sentry-sdk, in a small app, reports to a real ``conveyor serve`` through the DSN ``conveyor dsn``
prints: handled exceptions, a message and an unhandled error arrive compressed (brotli, the SDK's default
when brotli is installed, and gzip) and are grouped into the right issues; on 429 the SDK backs off and
sends nothing more during the window ``X-Sentry-Rate-Limits`` gave it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.errors.live import dsn, serving

APP = Path(__file__).with_name("sentry_app.py")


def run_app(scenario: str, sentry_dsn: str, **env: str) -> tuple[list[dict[str, Any]], str]:
    """Run the app; the requests its SDK sent (status and encoding of each), and its stderr."""
    environ = {**os.environ, "SENTRY_DSN": sentry_dsn, **env}
    done = subprocess.run(
        [sys.executable, str(APP), scenario], capture_output=True, text=True, timeout=120, env=environ
    )
    sent = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return sent, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("compression", ["br", "gzip"])
def test_exceptions_messages_and_an_unhandled_error_arrive_compressed_and_grouped(
    tmp_path: Path, compression: str
) -> None:
    with serving(tmp_path) as live:
        sentry_dsn = dsn(live)
        assert sentry_dsn.startswith("http://") and sentry_dsn.endswith("/1")
        sent, stderr = run_app("errors", sentry_dsn, COMPRESSION=compression, RELEASE="v1")
        assert "KeyError: 'unhandled'" in stderr  # the app died of it, after the SDK sent it
        assert len(sent) == 5, (sent, stderr)
        assert {(s["status"], s["encoding"]) for s in sent} == {(200, compression)}
        answer = httpx.get(f"{live.url}/api/apps/web/errors", params={"environment": "staging"}).json()
    issues = {issue["title"]: issue for issue in answer["issues"]}
    assert set(issues) == {
        "LookupError: no order 1",  # one issue for both orders: titled by its first event
        "ValueError: bad value 42",
        "cache miss for user u1",
        "KeyError: 'unhandled'",
    }
    assert issues["LookupError: no order 1"]["events"] == 2
    assert issues["LookupError: no order 1"]["culprit"] == "__main__ in checkout"
    assert issues["ValueError: bad value 42"]["culprit"] == "__main__ in handled"
    assert all(i["first_release"] == "v1" and i["environment"] == "staging" for i in issues.values())
    assert "Traceback" not in live.output()


@pytest.mark.slow
def test_the_sdk_stops_sending_while_rate_limited(tmp_path: Path) -> None:
    with serving(tmp_path, errors="  rate_limit: {envelopes: 2, per: 1h}") as live:
        sent, stderr = run_app("flood", dsn(live), MESSAGES="6")
        # two stored, the third refused with X-Sentry-Rate-Limits: the SDK sends none of the other three
        assert [s["status"] for s in sent] == [200, 200, 429], (sent, stderr)
        refused = httpx.post(
            f"{live.url}/api/1/store/", params={"sentry_key": dsn(live).split("//")[1].split("@")[0]}, json={}
        )
        assert refused.status_code == 429
        assert refused.headers["X-Sentry-Rate-Limits"].endswith("::key")
        assert 3500 < int(refused.headers["Retry-After"]) <= 3600
        answer = httpx.get(f"{live.url}/api/apps/web/errors").json()
    assert sorted(i["title"] for i in answer["issues"]) == ["flood 0", "flood 1"]
