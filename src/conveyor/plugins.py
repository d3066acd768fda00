"""Plugin discovery: drivers, checks and notifiers are found through Python entry points.

Built-ins register exactly as a third-party package would, in pyproject.toml under the groups
``conveyor.drivers``, ``conveyor.checks`` and ``conveyor.notifiers``. A third-party package adds its own
entry point and conveyor finds it once installed; nothing in conveyor names the built-ins specially.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor.checks.base import Check
    from conveyor.drivers.base import Driver
    from conveyor.notifiers.base import Notifier

DRIVER_GROUP = "conveyor.drivers"
CHECK_GROUP = "conveyor.checks"
NOTIFIER_GROUP = "conveyor.notifiers"


class UnknownPlugin(LookupError):
    """A config names a driver, check or notifier type that no installed package provides."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r} (known: {', '.join(known) or 'none'})")


@cache
def _load(group: str) -> dict[str, Any]:
    return {ep.name: ep.load() for ep in entry_points(group=group)}


def driver_names() -> list[str]:
    return sorted(_load(DRIVER_GROUP))


def check_names() -> list[str]:
    return sorted(_load(CHECK_GROUP))


def driver_class(name: str) -> type[Driver]:
    plugins = _load(DRIVER_GROUP)
    if name not in plugins:
        raise UnknownPlugin("driver", name, sorted(plugins))
    cls: type[Driver] = plugins[name]
    return cls


def check_class(name: str) -> type[Check]:
    plugins = _load(CHECK_GROUP)
    if name not in plugins:
        raise UnknownPlugin("check type", name, sorted(plugins))
    cls: type[Check] = plugins[name]
    return cls


def notifier_names() -> list[str]:
    return sorted(_load(NOTIFIER_GROUP))


def notifier_class(name: str) -> type[Notifier]:
    plugins = _load(NOTIFIER_GROUP)
    if name not in plugins:
        raise UnknownPlugin("notifier type", name, sorted(plugins))
    cls: type[Notifier] = plugins[name]
    return cls
