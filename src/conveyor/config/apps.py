"""One app, resolved: references checked, and its settings worked out for every environment.

An app must name a declared team, declared groups and only configured environments (each with a
did-you-mean); a ``manual`` tier needs a ``reason``. A local ``repo`` path is taken relative to the
config's folder and stored absolute; URLs (``https://``, ``file://``, ``ssh://``, ``user@host:path``)
are kept as written. With ``check_repos``, a local path (or ``file://`` URL) that does not exist or is
not a git repository (a work tree or a bare one) is a problem. Every app gets an :class:`AppEnvironment`
for every configured environment. ``poll`` comes from the app, else from ``defaults`` unless the app is on
GitHub (see :meth:`AppResolver._with_poll`).
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from conveyor.config.errors import ProblemLog, did_you_mean
from conveyor.config.github import GitHubResolver
from conveyor.config.inheritance import Level, merge_deploy, merge_vars, pick_checks, pick_setting, var_paths
from conveyor.config.plugin_specs import PluginSpecs
from conveyor.config.resolved import AppConfig, AppEnvironment, CiPolicy
from conveyor.config.schema import POLL_OFF, RESERVED_VARS, AppSection, EnvironmentSection, FileSection
from conveyor.config.yaml_positions import PositionedDocument, YamlPath

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^[\w.-]+@[\w.-]+:")


class AppResolver:
    """Resolves apps against the validated top level; ``broken`` names top-level sections that failed
    validation, whose dependent checks are skipped rather than reported as a cascade."""

    def __init__(
        self,
        doc: PositionedDocument,
        log: ProblemLog,
        folder: Path,
        file: FileSection,
        broken: set[str],
        *,
        check_repos: bool = False,
    ) -> None:
        self.doc, self.log, self.folder, self.file, self.broken = doc, log, folder, file, broken
        self.check_repos = check_repos
        self.github = GitHubResolver(doc, log, folder)
        default_ci = self.github.ci(file.defaults.ci, ("defaults", "ci"))
        self.default_ci = default_ci if isinstance(default_ci, CiPolicy) else None

    def resolve(self, name: str, app: AppSection, broken_keys: set[str]) -> AppConfig | None:
        """The app, or None after reporting problems; ``broken_keys`` failed validation already."""
        path: YamlPath = ("apps", name)
        broken = self.broken | broken_keys
        problems_before = len(self.log)
        if not broken & {"teams", "team"}:
            self._check_team(path, app.team)
        if not broken & {"groups"}:
            self._check_groups(path, app.groups)
        if self.check_repos and "repo" not in broken:
            self._check_repo(path, app.repo)
        if broken & {"environments", "defaults", "vars", "deploy", "checks", "tier"}:
            return None
        misspelt = self._check_environment_keys(path, app)
        tier = app.tier or self.file.defaults.tier or "auto"
        if tier == "manual" and not app.reason:
            where = self.doc.at((*path, "tier")) if app.tier else self.doc.key_at(path)
            self.log.add(where, f"app {name!r} has tier manual but no reason (add `reason: ...` saying why)")
        environments = {env: self._environment(name, app, env) for env in self.file.environments if env not in misspelt}
        if tier == "bake" and not any(e.bake > 0 for e in environments.values() if e is not None):
            where = self.doc.at((*path, "tier")) if app.tier else self.doc.key_at(path)
            self.log.add(
                where, f"app {name!r} has tier bake but no bake time (add `bake: 30m` to it or an environment)"
            )
        repository, paths, ci = self.github.app(name, app, app.repo, self.default_ci)
        if len(self.log) > problems_before:
            return None
        resolved = AppConfig(
            name=name,
            repo=self._repo(app.repo),
            branch=app.branch or self.file.defaults.branch or "main",
            team=app.team,
            tier=tier,
            reason=app.reason,
            groups=tuple(dict.fromkeys(app.groups)),
            environments={env: spec for env, spec in environments.items() if spec is not None},
            github=repository,
            paths=paths,
            ci=ci,
        )
        return self._with_poll(path, app, resolved)

    def _with_poll(self, path: YamlPath, app: AppSection, resolved: AppConfig) -> AppConfig | None:
        """``poll`` from the app, else from ``defaults`` for an app not on GitHub (a GitHub app hears of
        pushes by webhook and reconciliation, which wait for CI); ``poll: none`` switches it off."""
        on_github = resolved.github is not None
        chosen = app.poll if app.poll is not None else None if on_github else self.file.defaults.poll
        if chosen is None or chosen == POLL_OFF:
            return resolved
        if on_github and resolved.ci is not None:
            self.log.add(
                self.doc.at((*path, "poll")),
                f"app {path[-1]!r} waits for CI on GitHub; polling would release its heads without CI "
                "(remove `poll`, or set `ci: none`)",
            )
            return None
        return replace(resolved, poll=float(chosen))

    def _check_team(self, path: YamlPath, team: str) -> None:
        if team not in self.file.teams:
            self.log.add(self.doc.at((*path, "team")), _unknown("team", team, list(self.file.teams)))

    def _check_groups(self, path: YamlPath, groups: list[str]) -> None:
        for index, group in enumerate(groups):
            if group not in self.file.groups:
                known = list(self.file.groups)
                self.log.add(self.doc.at((*path, "groups", index)), _unknown("group", group, known))

    def _check_environment_keys(self, path: YamlPath, app: AppSection) -> set[str]:
        """Report unknown environment keys; return the configured environments they likely misspell.

        Those environments are not resolved: their settings are in the misspelt section, so every
        problem found there (a missing var, an unknown placeholder) would only repeat the typo.
        """
        misspelt: set[str] = set()
        unset = [env for env in self.file.environments if env not in app.environments]
        for env in app.environments:
            if env not in self.file.environments:
                where = self.doc.key_at((*path, "environments", env))
                self.log.add(where, _unknown("environment", env, self.file.environments))
                misspelt.update(difflib.get_close_matches(env, unset, n=1))
        return misspelt

    def _environment(self, name: str, app: AppSection, env: str) -> AppEnvironment | None:
        app_path: YamlPath = ("apps", name)
        levels = [
            Level(("defaults",), self.file.defaults),
            Level(app_path, app),
            Level((*app_path, "environments", env), app.environments.get(env) or EnvironmentSection()),
        ]
        vars = merge_vars(levels)
        self._check_reserved_vars(levels)
        specs = PluginSpecs(self.doc, self.log, name, env, vars, var_paths(levels))
        deploy = specs.deploy(merge_deploy(levels))
        checks = specs.checks(*pick_checks(levels))
        if deploy is None:
            return None
        on_failure, bake, interval = (pick_setting(levels, k) for k in ("on_failure", "bake", "bake_interval"))
        return AppEnvironment(
            environment=env,
            vars=vars,
            deploy=deploy,
            checks=checks,
            on_failure=on_failure.value if on_failure else "hold",
            bake=float(bake.value) if bake else 0.0,
            bake_interval=float(interval.value) if interval else 60.0,
        )

    def _check_reserved_vars(self, levels: list[Level]) -> None:
        for level in levels:
            for var in RESERVED_VARS:
                if var in level.layer.vars:
                    where = self.doc.key_at((*level.path, "vars", var))
                    self.log.add(where, f"var {var!r} is reserved: conveyor fills {{{var}}} itself")

    def _check_repo(self, path: YamlPath, repo: str) -> None:
        if repo.startswith("file://"):
            local = Path(url2pathname(urlsplit(repo).path))
        elif _URL.match(repo):
            return  # a remote: only a fetch can tell
        else:
            local = Path(self._repo(repo))
        if not local.exists():
            problem = "does not exist"
        elif not _is_git_repository(local):
            problem = "is not a git repository"
        else:
            return
        self.log.add(self.doc.at((*path, "repo")), f"repo {repo!r} of app {path[-1]!r} {problem} ({local})")

    def _repo(self, repo: str) -> str:
        if _URL.match(repo):
            return repo
        return str((self.folder / os.path.expanduser(repo)).resolve())


def _is_git_repository(folder: Path) -> bool:
    """A work tree (``.git`` folder, or file in a linked worktree) or a bare repository, as git tells them."""
    if (folder / ".git").exists():
        return True
    return (folder / "HEAD").is_file() and (folder / "objects").is_dir() and (folder / "refs").is_dir()


def _unknown(kind: str, name: str, known: list[str]) -> str:
    return f"unknown {kind} {name!r}{did_you_mean(name, known)} (known: {', '.join(known) or 'none'})"
