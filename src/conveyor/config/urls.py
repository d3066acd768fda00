"""URLs in options: what every ``url`` and ``address`` a user writes must be, checked in one place.

Plugins (notifiers, checks) import these types for their options, as they import durations.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator


def http_url(url: str) -> str:
    """``url`` if it is an http:// or https:// URL with a host; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, got {url!r}")
    return url


def base_url(url: str) -> str:
    """An http(s) URL that paths are appended to: without its trailing ``/``."""
    return http_url(url).rstrip("/")


HttpUrl = Annotated[str, AfterValidator(http_url)]  # used as written (a webhook's endpoint)
BaseUrl = Annotated[str, AfterValidator(base_url)]  # a server's address: conveyor appends API paths to it
