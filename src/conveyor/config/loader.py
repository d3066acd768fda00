"""``conveyor.yaml`` → :class:`~conveyor.config.resolved.Config`, or every problem at once.

The steps, each reporting into one :class:`~conveyor.config.errors.ProblemLog`:

1. read and parse the YAML, keeping positions and filling ``${VAR}`` (:mod:`.yaml_positions`);
2. check the shape with pydantic models (:mod:`.schema`), the top level and each app separately;
3. check references: environments, an app's team, groups, per-environment keys, manual tier reasons,
   notifiers (:mod:`.notifiers`) and the team ``notify`` lists that name them, windows (:mod:`.windows`);
4. for every app in every environment, apply inheritance (:mod:`.inheritance`) and validate deploy
   and check options, and the vars each plugin declares, against their plugins (:mod:`.plugin_specs`);
5. with ``check_repos`` (``conveyor check``), look at every local repository path: it must exist and
   be a git repository. Other commands skip this, so a read never depends on a folder being there.

Nothing is returned unless the log is empty; otherwise :class:`ConfigError` lists every problem.

``reading=True`` loads the config of a command that only reads (``status``, ``why``, ``history``): the
``notifiers``, ``api`` and ``github`` sections, which only the sender, the HTTP API and the intake use, are skipped,
so their ``${VAR}`` secrets need not be set where people read. The result has no notifiers and no API
tokens. ``conveyor check`` and every command that writes load the whole file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from conveyor.config import schema
from conveyor.config.apps import AppResolver
from conveyor.config.database_url import database_url_problem
from conveyor.config.errors import ConfigError, Position, Problem, ProblemLog
from conveyor.config.github import GitHubResolver
from conveyor.config.notifiers import NotifierResolver
from conveyor.config.resolved import AlertmanagerConfig, ApiToken, Config, TeamConfig
from conveyor.config.schema import AppSection, FileSection, keys_of
from conveyor.config.validation import Subject, describe_path, explain
from conveyor.config.windows import WindowResolver
from conveyor.config.yaml_positions import PositionedDocument, YamlPath
from conveyor.domain.alerts import Matcher, MatcherError, parse_matcher

DATABASE_URL_VARIABLE = "CONVEYOR_DATABASE_URL"
WRITERS_ONLY = frozenset({"notifiers", "api", "alertmanager", "github"})  # the sections a reading load skips
M = TypeVar("M", bound=BaseModel)


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, *, reading: bool = False, check_repos: bool = False
) -> Config:
    """Load and validate the config at ``path``; ``environ`` (default ``os.environ``) fills ``${VAR}``.

    With ``reading``, skip the sections only writers use (see the module docstring). ``check_repos`` also
    reports a local repository path that is missing or not a git repository.
    """
    environ = os.environ if environ is None else environ
    log = ProblemLog(str(path))
    text = _read(path, log)
    doc = PositionedDocument(text, log, environ, WRITERS_ONLY if reading else frozenset())
    data = _top_level(doc, log)
    log.raise_if_any(doc.secrets)
    if reading:
        data = {key: value for key, value in data.items() if key not in WRITERS_ONLY}
    config = _resolve(path, doc, log, data, environ, check_repos=check_repos, check_team_notifiers=not reading)
    log.raise_if_any(doc.secrets)
    assert config is not None  # an empty log means every part resolved
    return config


def _read(path: Path, log: ProblemLog) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        message = "no such file (run `conveyor init` to create one)"
    except IsADirectoryError:
        message = "this is a folder, not a config file"
    except UnicodeDecodeError:
        message = "the file is not UTF-8 text"
    except OSError as exc:
        message = f"cannot read the file: {exc.strerror or exc}"
    raise ConfigError([Problem(log.file, 1, 1, message)])


def _top_level(doc: PositionedDocument, log: ProblemLog) -> dict[str, Any]:
    if not doc.parsed:
        return {}
    if doc.data is None:
        log.add(Position(1, 1), "the file is empty (run `conveyor init` for a starter config)")
        return {}
    if not isinstance(doc.data, dict):
        log.add(Position(1, 1), "the top level must be a mapping (environments, teams, apps, ...)")
        return {}
    data: dict[str, Any] = doc.data
    groups = data.get("groups")
    if isinstance(groups, list):
        data["groups"] = _groups_from_list(doc, log, groups)
    return data


def _groups_from_list(doc: PositionedDocument, log: ProblemLog, names: list[Any]) -> Any:
    """``groups: [a, b]`` is short for ``groups: {a: {}, b: {}}``."""
    groups: dict[str, Any] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str):
            log.add(doc.at(("groups", index)), f"item {index + 1} of 'groups': expected a group name")
        elif name in groups:
            log.add(doc.at(("groups", index)), f"duplicate group {name!r}")
        else:
            doc.alias(("groups", index), ("groups", name))
            groups[name] = {}
    return groups


def _resolve(
    path: Path,
    doc: PositionedDocument,
    log: ProblemLog,
    data: dict[str, Any],
    environ: Mapping[str, str],
    *,
    check_repos: bool,
    check_team_notifiers: bool = True,
) -> Config | None:
    file, broken = _validate_top_level(data, doc, log)
    apps = _validate_apps(data.get("apps"), doc, log)
    if "environments" not in broken:
        _check_environments(file.environments, doc, log)
    folder = path.resolve().parent
    resolver = AppResolver(doc, log, folder, file, broken, check_repos=check_repos)
    resolved_apps = {name: resolver.resolve(name, app, bad) for name, (app, bad) in apps.items()}
    database_url = _database_url(file.database_url, folder, environ)
    if file.database_url and not environ.get(DATABASE_URL_VARIABLE):
        problem = database_url_problem(database_url)
        if problem is not None:
            log.add(doc.at(("database_url",)), problem)
    api_tokens = _api_tokens(file.api, doc, log)
    alertmanager = _alertmanager(file.alertmanager, file.environments, doc, log)
    notifiers = NotifierResolver(doc, log)
    resolved_notifiers = notifiers.resolve(file.notifiers, sections=set(data))
    if check_team_notifiers and not broken & {"teams", "notifiers"}:
        notifiers.check_teams(file.teams, list(file.notifiers))
    windows = WindowResolver(doc, log).resolve(file.windows, tuple(file.environments))
    github = GitHubResolver(doc, log, folder)
    github_config = github.config(file.github) if "github" not in broken else None
    secrets = set(doc.secrets) | notifiers.secrets | github.secrets
    secrets.update(token.token for token in file.api.tokens)
    if file.alertmanager is not None:
        if file.alertmanager.token is not None:
            secrets.add(file.alertmanager.token)
        if file.alertmanager.basic_auth is not None:
            secrets.add(file.alertmanager.basic_auth.password)
    password = urlsplit(database_url).password
    if password:
        secrets.add(password)
    if log:
        return None
    return Config(
        path=path.resolve(),
        environments=tuple(file.environments),
        teams={name: TeamConfig(name, tuple(team.notify)) for name, team in file.teams.items()},
        groups={name: group.description for name, group in file.groups.items()},
        apps={name: app for name, app in resolved_apps.items() if app is not None},
        state_dir=(folder / os.path.expanduser(file.state_dir or ".conveyor")).resolve(),
        database_url=database_url,
        secrets=frozenset(secrets),
        api_tokens=api_tokens,
        api_max_body_bytes=file.api.max_body_bytes,
        public_url=file.public_url,
        errors=file.errors.resolved(),
        notifiers=resolved_notifiers,
        windows=windows,
        alertmanager=alertmanager,
        github=github_config,
    )


def _validate_top_level(data: dict[str, Any], doc: PositionedDocument, log: ProblemLog) -> tuple[FileSection, set[str]]:
    file, broken = _validate_leniently(FileSection, data, (), doc, log)
    return file or FileSection(), broken


def _validate_apps(raw: Any, doc: PositionedDocument, log: ProblemLog) -> dict[str, tuple[AppSection, set[str]]]:
    """Each app on its own, so a mistake in one app hides nothing about the others."""
    if not isinstance(raw, dict):
        return {}  # a wrong type is reported with the top level
    apps: dict[str, tuple[AppSection, set[str]]] = {}
    for name, value in raw.items():
        app, broken = _validate_leniently(AppSection, value, ("apps", name), doc, log)
        if app is not None and re.match(schema.NAME_PATTERN, name):
            apps[name] = (app, broken)
    return apps


def _validate_leniently(
    model: type[M], data: Any, prefix: YamlPath, doc: PositionedDocument, log: ProblemLog
) -> tuple[M | None, set[str]]:
    """The validated model and the keys that failed (reported, then left at their defaults).

    Checks that depend on a broken key are skipped, so one mistake does not cause a cascade of
    problems, while the rest of the file is still checked. ``None`` when even that is impossible
    (a required key is missing, or the data is not a mapping).
    """
    try:
        return model.model_validate(data), set()
    except ValidationError as exc:
        _report(exc, prefix, doc, log)
        broken = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
    if not isinstance(data, dict):
        return None, broken
    try:
        return model.model_validate({k: v for k, v in data.items() if k not in broken}), broken
    except ValidationError:
        return None, broken


def _report(exc: ValidationError, prefix: YamlPath, doc: PositionedDocument, log: ProblemLog) -> None:
    subject = Subject(
        path_of=lambda loc: (*prefix, *loc),
        describe=lambda loc: describe_path((*prefix, *loc)),
        known_keys=lambda loc: _known_keys((*prefix, *loc)),
    )
    for explained in explain(exc, subject):
        where = doc.key_at(explained.path) if explained.on_key else doc.at(explained.path)
        log.add(where, explained.message)


def _known_keys(path: tuple[Any, ...]) -> list[str]:
    match path:
        case ():
            return keys_of(schema.FileSection)
        case ("defaults",):
            return keys_of(schema.DefaultsSection)
        case ("teams", _):
            return keys_of(schema.TeamSection)
        case ("groups", _):
            return keys_of(schema.GroupSection)
        case ("apps", _):
            return keys_of(schema.AppSection)
        case ("apps", _, "environments", _):
            return keys_of(schema.EnvironmentSection)
        case ("api",):
            return keys_of(schema.ApiSection)
        case ("github",):
            return keys_of(schema.GitHubSection)
        case ("github", "app"):
            return keys_of(schema.GitHubAppSection)
        case ("errors",):
            return keys_of(schema.ErrorsSection)
        case ("errors", "rate_limit"):
            return keys_of(schema.ErrorRateLimitSection)
        case ("errors", "spike"):
            return keys_of(schema.SpikeSection)
        case ("api", "tokens", _):
            return keys_of(schema.ApiTokenSection)
        case ("alertmanager",):
            return keys_of(schema.AlertmanagerSection)
        case ("alertmanager", "basic_auth"):
            return keys_of(schema.BasicAuthSection)
    return []


def _api_tokens(api: schema.ApiSection, doc: PositionedDocument, log: ProblemLog) -> tuple[ApiToken, ...]:
    """The API tokens as digests; a name given twice is a problem (it would make the actor ambiguous)."""
    first: dict[str, int] = {}
    for index, entry in enumerate(api.tokens):
        if entry.name in first:
            line = doc.at(("api", "tokens", first[entry.name], "name")).line
            log.add(
                doc.at(("api", "tokens", index, "name")),
                f"duplicate API token name {entry.name!r} (first at line {line})",
            )
        else:
            first[entry.name] = index
    return tuple(ApiToken(e.name, hashlib.sha256(e.token.encode()).digest()) for e in api.tokens)


def _alertmanager(
    section: schema.AlertmanagerSection | None, environments: list[str], doc: PositionedDocument, log: ProblemLog
) -> AlertmanagerConfig | None:
    """The hook's credentials as digests, and ``stop_on`` parsed: every environment known, every matcher valid."""
    if section is None:
        return None
    stop_on: dict[str, tuple[Matcher, ...]] = {}
    for environment, rule in section.stop_on.items():
        path: YamlPath = ("alertmanager", "stop_on", environment)
        if environment not in environments:
            known = ", ".join(environments)
            log.add(doc.key_at(path), f"stop_on names environment {environment!r}, which is not configured ({known})")
            continue
        if isinstance(rule, dict):
            texts = [((*path, label), f'{label}="{_quoted(value)}"') for label, value in rule.items()]
        else:
            texts = [((*path, index), text) for index, text in enumerate(rule)]
        if not texts:
            log.add(doc.at(path), f"stop_on for {environment!r} has no matchers (it would stop on nothing)")
            continue
        matchers = []
        for where, text in texts:
            try:
                matchers.append(parse_matcher(text))
            except MatcherError as exc:
                log.add(doc.at(where), f"in alertmanager.stop_on.{environment}: {exc}")
        stop_on[environment] = tuple(matchers)
    basic = section.basic_auth
    return AlertmanagerConfig(
        token_sha256=hashlib.sha256(section.token.encode()).digest() if section.token else None,
        basic_auth=(basic.username, hashlib.sha256(basic.password.encode()).digest()) if basic else None,
        stop_on=stop_on,
    )


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _check_environments(environments: list[str], doc: PositionedDocument, log: ProblemLog) -> None:
    if not environments:
        log.add(doc.at(("environments",)), "environments must list at least one environment")
    first: dict[str, int] = {}
    for index, name in enumerate(environments):
        if name in first:
            line = doc.at(("environments", first[name])).line
            log.add(doc.at(("environments", index)), f"duplicate environment {name!r} (first at line {line})")
        else:
            first[name] = index


def _database_url(configured: str | None, folder: Path, environ: Mapping[str, str]) -> str:
    """``CONVEYOR_DATABASE_URL`` wins, then the config's ``database_url``, then SQLite beside the config.

    A relative SQLite path in the config (``sqlite:///conveyor.db``) is taken relative to the config's folder.
    """
    if environ.get(DATABASE_URL_VARIABLE):
        return environ[DATABASE_URL_VARIABLE]
    if configured:
        prefix = "sqlite:///"
        rest = configured.removeprefix(prefix)
        if configured.startswith(prefix) and rest and not rest.startswith(("/", ":memory:")):
            return f"{prefix}{folder / rest}"
        return configured
    return f"sqlite:///{folder / 'conveyor.db'}"
