"""The ``notifiers`` section, and the team ``notify`` lists that name its entries.

Each entry names a notifier plugin in ``type`` (looked up through :mod:`conveyor.plugins`), may set
``global`` and ``events`` (read by conveyor's routing) and ``retry`` (read by the sender's outbox), and
passes every other key to the plugin's ``Options`` model. Duration strings given for ``float`` options
become seconds. Every secret option (a pydantic ``SecretStr``, like the webhook's ``secret``) joins
``Config.secrets`` whether or not it came from ``${VAR}``, so logs redact it. Every error points at the
line where the offending value is.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from conveyor import plugins
from conveyor.config.durations import convert_duration_fields
from conveyor.config.errors import ProblemLog, did_you_mean
from conveyor.config.resolved import NotifierConfig
from conveyor.config.schema import NotifierEntry, RetrySection, TeamSection, keys_of
from conveyor.config.validation import Subject, explain, the_path
from conveyor.config.yaml_positions import PositionedDocument, YamlPath
from conveyor.domain.event_kinds import EVENT_KINDS, NOTIFYING_KINDS
from conveyor.notifiers.base import Notifier


class NotifierResolver:
    def __init__(self, doc: PositionedDocument, log: ProblemLog) -> None:
        self.doc, self.log = doc, log
        self.secrets: set[str] = set()
        self.sections: Collection[str] | None = None

    def resolve(
        self, entries: Mapping[str, dict[str, Any]], sections: Collection[str] | None = None
    ) -> dict[str, NotifierConfig]:
        """The notifiers of ``entries``; ``sections`` are the config's top-level keys (None: not checked),
        for the plugins that need one of their own (a ``github`` notifier, the ``github:`` section)."""
        self.sections = sections
        resolved = {name: self._notifier(name, entry) for name, entry in entries.items()}
        return {name: notifier for name, notifier in resolved.items() if notifier is not None}

    def check_teams(self, teams: Mapping[str, TeamSection], known: list[str]) -> None:
        """Every name in a team's ``notify`` list must be a configured notifier."""
        for team, section in teams.items():
            for index, name in enumerate(section.notify):
                if name not in known:
                    hint = did_you_mean(name, known)
                    message = f"unknown notifier {name!r}{hint} (known: {', '.join(known) or 'none'})"
                    self.log.add(self.doc.at(("teams", team, "notify", index)), message)

    def _notifier(self, name: str, entry: dict[str, Any]) -> NotifierConfig | None:
        path: YamlPath = ("notifiers", name)
        label = f"notifier {name!r}"
        own_keys = keys_of(NotifierEntry)
        own, broken = self._own_keys({k: v for k, v in entry.items() if k in own_keys}, path, label)
        events = self._events(path, own.events) if own is not None and "events" not in broken else None
        kind = entry.get("type")
        if not isinstance(kind, str):
            return None  # reported above: missing, or not a string
        plugin = self._plugin(kind, (*path, "type"))
        if plugin is None:
            return None
        model = plugin.Options
        needed: str | None = getattr(plugin, "needs_section", None)  # None too for a plugin not from Notifier
        if needed is not None and self.sections is not None and needed not in self.sections:
            message = f"notifier type {kind!r} needs the top-level '{needed}' section (see docs/{needed}.md)"
            self.log.add(self.doc.at((*path, "type")), message)
            return None
        default_events: frozenset[str] | None = getattr(plugin, "default_events", None)
        if own is not None and own.events is None and default_events is not None:
            events = default_events
        raw = {k: v for k, v in entry.items() if k not in own_keys}
        try:
            options = model.model_validate(convert_duration_fields(model, raw))
        except ValidationError as exc:
            self._report(exc, path, f"{label} (type {kind!r})", lambda _: [*keys_of(model), *own_keys])
            return None
        self.secrets.update(_secret_values(options))
        if own is None or events is None or broken:
            return None
        return NotifierConfig(
            name=name, type=kind, options=options, is_global=own.global_, events=events, retry=own.retry.policy()
        )

    def _own_keys(self, values: dict[str, Any], path: YamlPath, label: str) -> tuple[NotifierEntry | None, set[str]]:
        """The entry's own keys, and those that failed (reported, then left out so the rest is checked)."""
        try:
            return NotifierEntry.model_validate(values), set()
        except ValidationError as exc:
            self._report(exc, path, label, _own_keys_at)
            broken = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        try:
            return NotifierEntry.model_validate({k: v for k, v in values.items() if k not in broken}), broken
        except ValidationError:
            return None, broken

    def _events(self, path: YamlPath, events: list[str] | None) -> frozenset[str] | None:
        if events is None:
            return NOTIFYING_KINDS
        known = sorted(EVENT_KINDS)
        unknown = [(i, kind) for i, kind in enumerate(events) if kind not in EVENT_KINDS]
        for index, kind in unknown:
            message = f"unknown event kind {kind!r}{did_you_mean(kind, known)} (see docs/notifications.md)"
            self.log.add(self.doc.at((*path, "events", index)), message)
        return None if unknown else frozenset(events)

    def _plugin(self, kind: str, path: YamlPath) -> type[Notifier] | None:
        try:
            plugin = plugins.notifier_class(kind)
            plugin.Options  # noqa: B018 - a plugin without options is broken: reported below
        except plugins.UnknownPlugin as exc:
            known = ", ".join(exc.known) or "none installed"
            hint = did_you_mean(kind, exc.known)
            self.log.add(self.doc.at(path), f"unknown notifier type {kind!r}{hint} (known: {known})")
            return None
        except Exception as exc:  # a broken plugin package must not hide the rest of the report
            self.log.add(self.doc.at(path), f"notifier type {kind!r} could not be loaded: {type(exc).__name__}: {exc}")
            return None
        return plugin

    def _report(
        self, exc: ValidationError, path: YamlPath, label: str, known: Callable[[tuple[Any, ...]], Sequence[str]]
    ) -> None:
        """Report each error at its place; ``known`` gives the keys allowed in a mapping, for did-you-mean."""
        subject = Subject(lambda loc: (*path, *loc), lambda loc: the_path(label, loc), known)
        for explained in explain(exc, subject):
            where = self.doc.key_at(explained.path) if explained.on_key else self.doc.at(explained.path)
            self.log.add(where, explained.message)


def _own_keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys conveyor reads at ``loc`` of a notifier entry: the entry's own, or those of its ``retry``."""
    return keys_of(RetrySection) if loc == ("retry",) else keys_of(NotifierEntry)


def _secret_values(options: BaseModel) -> list[str]:
    values = (getattr(options, name) for name in type(options).model_fields)
    return [v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()]
