"""Who hears about an event: the notifiers of the app's team, plus every notifier marked ``global``,
each only for the event kinds it takes (its ``events``, or :data:`~conveyor.domain.event_kinds.NOTIFYING_KINDS`).

An event without an app (or with an app no longer in the config) goes to the global notifiers only.
A notifier whose plugin chooses its apps (:meth:`~conveyor.notifiers.base.Notifier.apps_concerned`, like
the ``github`` notifier: the apps with ``github`` set) gets every event of those apps and none of others.
The router is pure data built from the config; :func:`install` puts it on the Database, where
:func:`~conveyor.store.events.record_event` finds it. It lives on the Database rather than in a
module global because routing belongs to one config and its store: a process (a test run, a simulator)
may hold several, and each must route its own events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from conveyor import plugins
from conveyor.config.resolved import Config
from conveyor.store.database import Database


@dataclass(frozen=True)
class Router:
    team_of: Mapping[str, str] = field(default_factory=dict)  # app -> team
    team_notifiers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # team -> notify list
    global_notifiers: tuple[str, ...] = ()
    kinds: Mapping[str, frozenset[str]] = field(default_factory=dict)  # notifier -> kinds it is sent
    # notifier -> the only apps whose events it gets (as if global for them); see Notifier.apps_concerned
    scoped: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Router:
        scoped = {
            name: apps for name, n in config.notifiers.items() if (apps := _apps_concerned(n.type, config)) is not None
        }
        return cls(
            team_of={name: app.team for name, app in config.apps.items()},
            team_notifiers={name: team.notify for name, team in config.teams.items()},
            global_notifiers=tuple(name for name, n in config.notifiers.items() if n.is_global or name in scoped),
            kinds={name: n.events for name, n in config.notifiers.items()},
            scoped=scoped,
        )

    @cached_property
    def _any_kind(self) -> frozenset[str]:
        return frozenset().union(*self.kinds.values())

    def notifiers_for(self, kind: str, app: str | None) -> tuple[str, ...]:
        """The notifiers that get an event of ``kind`` about ``app``, team notifiers first, no repeats."""
        if kind not in self._any_kind:  # most events (steps) notify nobody: answer without looking further
            return ()
        team = self.team(app)
        candidates = (*self.team_notifiers.get(team, ()), *self.global_notifiers) if team else self.global_notifiers
        return tuple(n for n in dict.fromkeys(candidates) if kind in self.kinds.get(n, ()) and self._concerns(n, app))

    def _concerns(self, notifier: str, app: str | None) -> bool:
        apps = self.scoped.get(notifier)
        return apps is None or app in apps

    def team(self, app: str | None) -> str | None:
        return self.team_of.get(app) if app is not None else None


def install(db: Database, config: Config) -> Router:
    """Route the events written through ``db`` by ``config``; returns the router installed."""
    router = Router.from_config(config)
    db.router = router
    return router


def _apps_concerned(kind: str, config: Config) -> frozenset[str] | None:
    try:
        return plugins.notifier_class(kind).apps_concerned(config)
    except Exception:  # not installed here, or broken: the sender reports it; routed as usual meanwhile
        return None
