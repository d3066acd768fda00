"""``{version}`` and ``{sha}`` in a check's options, filled when the check measures.

The config loader fills ``{app}``, ``{env}`` and vars; the release is known only when a check runs, so a
check that declares ``release_placeholders`` gets these two left as written and fills them here. A
version is text from outside (a git tag, ``git describe``), so it is put into a query or a matcher only
when it is plain: letters, digits and ``. _ + ~ -``, at most 200 characters. Such text cannot end a
quoted PromQL string or an Alertmanager matcher value, nor add a selector or an operator to a query.
"""

from __future__ import annotations

import re

from conveyor.checks.base import CheckRequest

__all__ = ["RELEASE_PLACEHOLDERS", "UnsafeReleaseText", "fill_release"]

RELEASE_PLACEHOLDERS = ("version", "sha")
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,199}")


class UnsafeReleaseText(ValueError):
    """The release's version or SHA is not plain enough to be put into a query."""


def fill_release(template: str, request: CheckRequest) -> str:
    """``template`` with ``{version}`` and ``{sha}`` replaced by the release's."""
    for name in RELEASE_PLACEHOLDERS:
        token = f"{{{name}}}"
        if token not in template:
            continue
        value = getattr(request, name)
        if not _PLAIN.fullmatch(value):
            raise UnsafeReleaseText(
                f"the release's {name} {value[:80]!r} is not plain text (letters, digits, . _ + ~ -),"
                f" so it is not put into {template[:80]!r}"
            )
        template = template.replace(token, value)
    return template
