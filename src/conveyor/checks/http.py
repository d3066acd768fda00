"""The ``http`` check: one HTTP request, judged by status code and, optionally, a body substring.

Phases:

- ``error``: the request did not complete (refused connection, DNS failure, timeout, TLS or other
  transport error) — the target could not be asked, so nothing is known about the release;
- ``fail``: an answer came back but the status differs from ``expect_status`` or the body lacks
  ``expect_body``;
- ``pass``: otherwise.

The measurement's ``value`` is the status code as a string. Redirects are not followed, so
``expect_status`` is compared with exactly what the target answered. Header values are never logged.
"""

from __future__ import annotations

from typing import Literal, cast

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.reading import RequestHeaders
from conveyor.domain.model import Measurement
from conveyor.steps import StepContext

__all__ = ["HttpCheck", "HttpOptions"]


class HttpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    expect_status: int = Field(default=200, ge=100, le=599)
    expect_body: str | None = None
    timeout: float = Field(default=5, gt=0)
    method: Literal["GET", "HEAD"] = "GET"
    headers: RequestHeaders

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        return url

    @model_validator(mode="after")
    def _body_needs_get(self) -> HttpOptions:
        if self.expect_body is not None and self.method == "HEAD":
            raise ValueError("expect_body needs method GET: a HEAD response has no body")
        return self


class HttpCheck(Check):
    """Request ``url`` and compare the answer with ``expect_status`` and ``expect_body``."""

    name = "http"
    Options = HttpOptions

    def measure(self, request: CheckRequest, ctx: StepContext) -> Measurement:
        opts = cast(HttpOptions, request.options)
        try:
            with httpx.Client(timeout=opts.timeout, follow_redirects=False) as client:
                response = client.request(opts.method, opts.url, headers=opts.headers)
        except httpx.TimeoutException as exc:
            return Measurement.errored(f"timed out after {opts.timeout:g}s asking {opts.url}: {_text(exc)}")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            return Measurement.errored(f"cannot reach {opts.url}: {_text(exc)}")
        return _judge_response(response, opts)


def _judge_response(response: httpx.Response, opts: HttpOptions) -> Measurement:
    status = str(response.status_code)
    if response.status_code != opts.expect_status:
        return Measurement.failed(f"HTTP {status} from {opts.url} (expected {opts.expect_status})", value=status)
    if opts.expect_body is not None and opts.expect_body not in response.text:
        return Measurement.failed(
            f"HTTP {status} from {opts.url} but the body lacks {opts.expect_body!r}", value=status
        )
    return Measurement.passed(f"HTTP {status} from {opts.url}", value=status)


def _text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
