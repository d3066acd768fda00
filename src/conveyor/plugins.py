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
    cls: type[Driver] = _plugin(DRIVER_GROUP, "driver", name)
    return cls


def check_class(name: str) -> type[Check]:
    cls: type[Check] = _plugin(CHECK_GROUP, "check type", name)
    return cls


def notifier_names() -> list[str]:
    return sorted(_load(NOTIFIER_GROUP))


def notifier_class(name: str) -> type[Notifier]:
    cls: type[Notifier] = _plugin(NOTIFIER_GROUP, "notifier type", name)
    return cls


def _plugin(group: str, kind: str, name: str) -> Any:
    """The class registered as ``name`` in ``group``; ``kind`` names it in the error."""
    plugins = _load(group)
    if name not in plugins:
        raise UnknownPlugin(kind, name, sorted(plugins))
    return plugins[name]
