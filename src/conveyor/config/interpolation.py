"""``${VAR}`` in config strings, filled from the process environment before anything is validated.

Every value substituted this way is a secret: the loader collects them into ``Config.secrets`` so logs
can redact them, and never puts one into an error message. ``$${`` writes a literal ``${``.

A substituted value must not be read as a ``{placeholder}`` later, so the result is an
:class:`Interpolated` string that also remembers a *template* form in which the substituted parts have
their braces doubled; placeholder filling works on that form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Interpolated(str):
    """A string with ``${VAR}`` filled in; ``template`` is the same text safe for placeholder filling."""

    template: str

    def __new__(cls, value: str, template: str) -> Interpolated:
        self = super().__new__(cls, value)
        self.template = template
        return self


@dataclass
class Expansion:
    value: str
    secrets: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def expand_environment(text: str, environ: Mapping[str, str]) -> Expansion:
    """Replace every ``${VAR}`` in ``text``; unset names are listed in ``missing``."""
    if "${" not in text:
        return Expansion(text)
    value: list[str] = []
    template: list[str] = []
    result = Expansion(text)
    position = 0
    for match in _REFERENCE.finditer(text):
        literal = text[position : match.start()]
        value.append(literal)
        template.append(literal)
        position = match.end()
        name = match.group(1)
        if name is None:  # "$${" escapes a literal "${"
            value.append("${")
            template.append("${")
        elif name in environ:
            secret = environ[name]
            result.secrets.append(secret)
            value.append(secret)
            template.append(secret.replace("{", "{{").replace("}", "}}"))
        else:
            result.missing.append(name)
    value.append(text[position:])
    template.append(text[position:])
    result.value = Interpolated("".join(value), "".join(template))
    return result
