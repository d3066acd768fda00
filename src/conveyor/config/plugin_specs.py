"""Deploy blocks and check entries, validated against the options of the plugin they name.

For one app in one environment, after inheritance: the driver or check type is looked up through
:mod:`conveyor.plugins`; ``{placeholders}`` in the options are filled from that app's vars (plus ``app``
and ``env``); duration strings given for ``float`` fields become seconds; then the plugin's ``Options``
model validates the result. Every error points at the line where the offending value was written.

Before any option is filled, the vars each plugin declares in its ``Vars`` model are validated: a var
that is missing is reported where the environment is (or would be) written, a var of the wrong type
where its value is. A var reported so is not reported again as an unknown ``{placeholder}``: one
mistake, one problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from conveyor import plugins
from conveyor.config.durations import convert_duration_fields
from conveyor.config.errors import ProblemLog, did_you_mean
from conveyor.config.inheritance import MergedDeploy, Sourced
from conveyor.config.placeholders import PlaceholderError, fill_tree
from conveyor.config.resolved import CheckSpec, DeploySpec
from conveyor.config.schema import DEFAULT_CHECK_TIMEOUT, CheckEntry, DeployEntry, keys_of
from conveyor.config.validation import Subject, describe_path, explain, short_message, the_path
from conveyor.config.yaml_positions import PositionedDocument, YamlPath
from conveyor.domain.model import CheckLimits


class PluginSpecs:
    """Builds the DeploySpec and CheckSpecs of one app in one environment, reporting into ``log``."""

    def __init__(
        self,
        doc: PositionedDocument,
        log: ProblemLog,
        app: str,
        env: str,
        vars: dict[str, str],
        var_paths: Mapping[str, YamlPath],
    ):
        self.doc, self.log, self.app, self.env = doc, log, app, env
        self.vars, self.var_paths = vars, var_paths
        self.values = {**vars, "app": app, "env": env}
        self.where = f" in app {app!r} environment {env!r}"
        self.reported_vars: set[str] = set()  # missing or invalid: placeholders naming them say nothing more

    def deploy(self, merged: MergedDeploy) -> DeploySpec | None:
        if merged.driver is None:
            self.log.add(
                self.doc.key_at(("apps", self.app)),
                f"no deploy driver for app {self.app!r} in environment {self.env!r}"
                " (set deploy.driver in defaults, the app or the environment)",
            )
            return None
        name = merged.driver.value
        plugin = self._plugin("driver", name, merged.driver.path, plugins.driver_class)
        if plugin is None:
            return None
        vars_ok = self._vars(plugin, f"the {name} driver")
        subject = f"deploy (driver {name!r})"
        own_keys = keys_of(DeployEntry)
        own = {k: s for k, s in merged.options.items() if k in own_keys}
        entry: DeployEntry | None = None
        try:
            entry = DeployEntry.model_validate({k: s.value for k, s in own.items()})
        except ValidationError as exc:

            def path_of(loc: tuple[Any, ...]) -> YamlPath:
                return (*own[loc[0]].path, *loc[1:]) if loc and loc[0] in own else (*merged.anchor, *loc)

            self._report(exc, Subject(path_of, lambda loc: the_path(subject, loc), lambda _: own_keys))
        raw = {k: s for k, s in merged.options.items() if k not in own_keys}
        options = self._options(plugin.Options, raw, merged.anchor, subject, own_keys)
        if options is None or entry is None or not vars_ok:
            return None
        return DeploySpec(driver=name, options=options, step_timeout=entry.step_timeout)

    def checks(self, path: YamlPath, entries: Sequence[dict[str, Any]]) -> tuple[CheckSpec, ...]:
        specs: list[CheckSpec] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(entries):
            spec = self._check((*path, index), entry)
            if spec is None:
                continue
            if spec.name in seen:
                first = self.doc.at((*path, seen[spec.name], "name")).line
                message = f"duplicate check name {spec.name!r} (first at line {first})"
                self.log.add(self.doc.at((*path, index, "name")), message)
                continue
            seen[spec.name] = index
            specs.append(spec)
        return tuple(specs)

    def _check(self, path: YamlPath, entry: dict[str, Any]) -> CheckSpec | None:
        """One check entry; its own keys and its options are both checked even when one part fails."""
        own_keys = keys_of(CheckEntry)
        label = _check_label(entry)
        check: CheckEntry | None = None
        try:
            check = CheckEntry.model_validate({k: v for k, v in entry.items() if k in own_keys})
        except ValidationError as exc:
            self._report(exc, Subject(lambda loc: (*path, *loc), lambda loc: the_path(label, loc), lambda _: own_keys))
        kind = entry.get("type")
        if kind is None:
            return None
        plugin = self._plugin("check type", kind, (*path, "type"), plugins.check_class)
        if plugin is None:
            return None
        vars_ok = self._vars(plugin, f"{label} (type {kind!r})")
        raw = {k: Sourced(v, (*path, k)) for k, v in entry.items() if k not in own_keys}
        # release placeholders stay as written; the check fills them when it measures
        kept = {name: f"{{{name}}}" for name in getattr(plugin, "release_placeholders", ())}
        options = self._options(plugin.Options, raw, path, f"{label} (type {kind!r})", own_keys, kept)
        if options is None or check is None or not vars_ok:
            return None
        limits = CheckLimits(**check.model_dump(exclude={"name", "type", "step_timeout"}))
        waits = limits.initial_delay + limits.count * limits.interval
        if check.step_timeout is None:
            step_timeout = waits + DEFAULT_CHECK_TIMEOUT
        elif check.step_timeout <= waits:
            message = (
                f"step_timeout ({check.step_timeout:g}s) of {label} is not longer than its own waits"
                f" (initial_delay + count x interval = {waits:g}s)"
            )
            self.log.add(self.doc.at((*path, "step_timeout")), message)
            return None
        else:
            step_timeout = check.step_timeout
        return CheckSpec(name=check.name, type=check.type, options=options, limits=limits, step_timeout=step_timeout)

    def _plugin(self, kind: str, name: Any, path: YamlPath, lookup: Callable[[str], Any]) -> Any:
        """The plugin class (its ``Options`` and ``Vars`` models are what matter here), or None if reported."""
        if not isinstance(name, str):
            self.log.add(self.doc.at(path), f"the {kind} must be a string")
            return None
        try:
            plugin = lookup(name)
            plugin.Options  # noqa: B018  (a plugin without an Options model is broken: say so here)
        except plugins.UnknownPlugin as exc:
            known = ", ".join(exc.known) or "none installed"
            hint = did_you_mean(name, exc.known)
            self.log.add(self.doc.at(path), f"unknown {kind} {name!r}{hint} (known: {known})")
            return None
        except Exception as exc:  # a broken plugin package must not hide the rest of the report
            problem = f"{type(exc).__name__}: {exc}"
            self.log.add(self.doc.at(path), f"{kind} {name!r} could not be loaded: {problem}")
            return None
        return plugin

    def _vars(self, plugin: Any, reader: str) -> bool:
        """Validate the vars ``plugin`` declares; False after reporting a missing or invalid one.

        Var names are matched without regard to case (``PORT`` is ``port``), as they reach processes
        upper-cased anyway.
        """
        model: type[BaseModel] | None = getattr(plugin, "Vars", None)
        if model is None or not model.model_fields:
            return True
        by_lower = {name.lower(): name for name in self.vars}
        given = {field: by_lower[field.lower()] for field in model.model_fields if field.lower() in by_lower}
        try:
            model.model_validate({field: self.vars[name] for field, name in given.items()})
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                field = str(error["loc"][0]) if error["loc"] else ""
                if field in self.reported_vars:
                    continue
                self.reported_vars.add(field)
                if error["type"] == "missing":
                    hint = did_you_mean(field, self.vars)
                    self.log.add(
                        self.doc.key_at(("apps", self.app, "environments", self.env, "vars", field)),
                        f"{reader} needs var {field!r}{self.where}{hint}"
                        f" (set vars.{field} in defaults, the app or the environment)",
                    )
                else:  # said of the level that wrote it, so a bad default is one problem, not one per place
                    name = given.get(field, field)
                    path = self.var_paths.get(name, ("apps", self.app, "vars", name))
                    self.log.add(
                        self.doc.at(path),
                        f"var {name!r} in {describe_path(path[:-2])}: {short_message(error)} ({reader} reads it)",
                    )
            return False
        return True

    def _options(
        self,
        model: type[BaseModel],
        raw: dict[str, Sourced],
        anchor: YamlPath,
        label: str,
        own_keys: Sequence[str],
        kept: Mapping[str, str] | None = None,
    ) -> BaseModel | None:
        unfilled: list[YamlPath] = []  # options whose placeholders failed: reported already

        def on_error(path: YamlPath, error: PlaceholderError) -> None:
            unfilled.append(path)
            if error.name not in self.reported_vars:
                self.log.add(self.doc.at(path), error.message)

        values = {**self.values, **kept} if kept else self.values
        filled = {k: fill_tree(s.value, values, s.path, on_error, self.where) for k, s in raw.items()}
        try:
            options = model.model_validate(convert_duration_fields(model, filled))
        except ValidationError as exc:

            def path_of(loc: tuple[Any, ...]) -> YamlPath:
                if loc and loc[0] in raw:
                    return (*raw[loc[0]].path, *loc[1:])
                return (*anchor, *loc)

            known = [*keys_of(model), *own_keys]
            subject = Subject(path_of, lambda loc: the_path(label, loc), lambda _: known)
            self._report(
                exc,
                subject,
                skip=[s.path for s in raw.values() if any(_within(u, [s.path]) for u in unfilled)],
            )
            return None
        return None if unfilled else options

    def _report(self, exc: ValidationError, subject: Subject, skip: Sequence[YamlPath] = ()) -> None:
        for explained in explain(exc, subject):
            if _within(explained.path, skip):
                continue
            where = self.doc.key_at(explained.path) if explained.on_key else self.doc.at(explained.path)
            self.log.add(where, explained.message)


def _within(path: YamlPath, prefixes: Sequence[YamlPath]) -> bool:
    return any(path[: len(prefix)] == prefix for prefix in prefixes)


def _check_label(entry: dict[str, Any]) -> str:
    name = entry.get("name")
    return f"check {name!r}" if isinstance(name, str) and name else "a check entry"
