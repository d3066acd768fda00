"""Who hears about an event: the notifiers of the app's team, plus every notifier marked ``global``,
each only for the event kinds it takes (its ``events``, or :data:`~conveyor.domain.event_kinds.NOTIFYING_KINDS`).

An event without an app (or with an app no longer in the config) goes to the global notifiers only.
The router is pure data built from the config; :func:`install` puts it on the Database, where
:func:`~conveyor.store.events.record_event` finds it. It lives on the Database rather than in a
module global because routing belongs to one config and its store: a process (a test run, a simulator)
may hold several, and each must route its own events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from conveyor.config.resolved import Config
from conveyor.store.database import Database


@dataclass(frozen=True)
class Router:
    team_of: Mapping[str, str] = field(default_factory=dict)  # app -> team
    team_notifiers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # team -> notify list
    global_notifiers: tuple[str, ...] = ()
    kinds: Mapping[str, frozenset[str]] = field(default_factory=dict)  # notifier -> kinds it is sent

    @classmethod
    def from_config(cls, config: Config) -> Router:
        return cls(
            team_of={name: app.team for name, app in config.apps.items()},
            team_notifiers={name: team.notify for name, team in config.teams.items()},
            global_notifiers=tuple(name for name, n in config.notifiers.items() if n.is_global),
            kinds={name: n.events for name, n in config.notifiers.items()},
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
        return tuple(n for n in dict.fromkeys(candidates) if kind in self.kinds.get(n, ()))

    def team(self, app: str | None) -> str | None:
        return self.team_of.get(app) if app is not None else None


def install(db: Database, config: Config) -> Router:
    """Route the events written through ``db`` by ``config``; returns the router installed."""
    router = Router.from_config(config)
    db.router = router
    return router
