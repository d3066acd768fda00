"""``{name}`` placeholders in plugin options, filled from an app's vars in one environment.

The names available are the app's vars for that environment plus ``app`` and ``env``; ``{{`` and ``}}``
write literal braces. Only config values are ever filled in: release text (versions, SHAs, commit
messages) never reaches a placeholder here, so nothing the outside world writes can shape an option.
The one exception is narrow: a check that declares ``release_placeholders`` (``prometheus``,
``alertmanager``) gets ``{version}`` and ``{sha}`` left in its options and fills them itself, refusing
any version that is not plain text (:mod:`conveyor.checks.release_text`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from conveyor.config.errors import did_you_mean
from conveyor.config.yaml_positions import YamlPath

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class PlaceholderError(ValueError):
    """A template cannot be filled; the message says why, ``where`` is filled in by the caller.

    ``name`` is the unknown placeholder's name (None for an unbalanced brace).
    """

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.message, self.name = message, name


def fill(template: str, values: Mapping[str, str], where: str = "") -> str:
    """``template`` with every ``{name}`` replaced from ``values``."""
    template = getattr(template, "template", template)  # see conveyor.config.interpolation
    out: list[str] = []
    position = 0
    for match in _TOKEN.finditer(template):
        out.append(template[position : match.start()])
        position = match.end()
        token, name = match.group(0), match.group(1)
        if token in ("{{", "}}"):
            out.append(token[0])
        elif name is None:
            raise PlaceholderError(f"unbalanced {token!r}{where} (write {token * 2!r} for a literal brace)")
        elif name in values:
            out.append(values[name])
        else:
            known = ", ".join(sorted(values))
            raise PlaceholderError(
                f"unknown placeholder {{{name}}}{where}{did_you_mean(name, values)} (known: {known})", name
            )
    out.append(template[position:])
    return "".join(out)


def fill_tree(
    value: Any,
    values: Mapping[str, str],
    path: YamlPath,
    on_error: Callable[[YamlPath, PlaceholderError], None],
    where: str = "",
) -> Any:
    """Fill placeholders in every string inside ``value`` (lists and mappings included).

    ``where`` (e.g. `` in app 'web' environment 'staging'``) is put into error messages.
    """
    if isinstance(value, str):
        try:
            return fill(value, values, where)
        except PlaceholderError as exc:
            on_error(path, exc)
            return value
    if isinstance(value, list):
        return [fill_tree(item, values, (*path, i), on_error, where) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {k: fill_tree(v, values, (*path, k), on_error, where) for k, v in value.items()}
    return value
