"""The GitHub settings: the top-level ``github:`` section, and each app's ``github``, ``paths`` and ``ci``.

- ``github.app.private_key_file`` is read (relative to the config's folder) and must hold one PEM private
  key that cryptography can load (unencrypted RSA, as GitHub gives it); its text becomes a secret logs redact.
- An app's ``github`` ("owner/name") defaults to the one in a github.com ``repo`` URL (https, ssh or
  scp-like); other hosts (a GitHub Enterprise Server) name it explicitly.
- ``ci`` is ``none`` (release on push) or ``{required: [...], timeout: 2h}``; an app's own ``ci`` replaces
  the one in ``defaults`` whole. An app that sets ``paths`` or a ``ci`` to wait for but has no GitHub
  repository is a problem: nothing would ever report CI for it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from conveyor.config.errors import ProblemLog
from conveyor.config.resolved import CiPolicy, GitHubApp, GitHubConfig
from conveyor.config.schema import AppSection, CiSection, GitHubSection, keys_of
from conveyor.config.validation import Subject, describe_path, explain
from conveyor.config.yaml_positions import PositionedDocument, YamlPath

_GITHUB_URL = re.compile(
    r"^(?:https?://(?:[^@/]+@)?github\.com/|ssh://git@github\.com/|git@github\.com:)"
    r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$"
)
UNSET = object()  # an app's ``ci`` left out: it takes the default's


def github_repository(repo: str) -> str | None:
    """``owner/name`` of a github.com repository URL, else None."""
    match = _GITHUB_URL.match(repo.strip())
    return match.group("repo") if match else None


def pem_problem(text: str) -> str | None:
    """Why ``text`` is not the unencrypted RSA private key a GitHub App signs with, or None if it is one."""
    from conveyor.github.auth import app_private_key  # cryptography only for configs with an App

    try:
        app_private_key(text)
    except ValueError as exc:
        return f"is not usable: {exc}"
    return None


class GitHubResolver:
    def __init__(self, doc: PositionedDocument, log: ProblemLog, folder: Path) -> None:
        self.doc, self.log, self.folder = doc, log, folder
        self.secrets: set[str] = set()

    def config(self, section: GitHubSection | None) -> GitHubConfig | None:
        if section is None:
            return None
        app = None
        if section.app is not None:
            key = self._private_key(section.app.private_key_file)
            app = GitHubApp(section.app.id, key) if key is not None else None
        self.secrets.update(s for s in (section.webhook_secret, section.token) if s)
        return GitHubConfig(
            api_url=section.api_url,
            webhook_secret=section.webhook_secret,
            token=section.token,
            app=app,
            reconcile_interval=section.reconcile_interval,
            retention=section.retention,
        )

    def _private_key(self, name: str) -> str | None:
        where = self.doc.at(("github", "app", "private_key_file"))
        path = (self.folder / Path(name).expanduser()).resolve()
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            self.log.add(where, f"private_key_file {name!r}: no such file ({path})")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.log.add(where, f"private_key_file {name!r}: cannot read it ({getattr(exc, 'strerror', None) or exc})")
            return None
        problem = pem_problem(text)
        if problem is not None:
            self.log.add(where, f"private_key_file {name!r} {problem}")
            return None
        self.secrets.add(text.strip())
        return text

    def ci(self, raw: Any, path: YamlPath) -> CiPolicy | object | None:
        """The policy at ``path`` (``none`` is None), or UNSET when left out or broken (reported)."""
        if raw is None:
            return UNSET
        if raw == "none":
            return None
        if not isinstance(raw, dict):
            self.log.add(
                self.doc.at(path), f"{describe_path(path)}: expected `none` or {{required: [...], timeout: 2h}}"
            )
            return UNSET
        try:
            section = CiSection.model_validate(raw)
        except ValidationError as exc:
            subject = Subject(
                path_of=lambda loc: (*path, *loc),
                describe=lambda loc: describe_path((*path, *loc)),
                known_keys=lambda loc: keys_of(CiSection) if not loc else [],
            )
            for explained in explain(exc, subject):
                at = self.doc.key_at(explained.path) if explained.on_key else self.doc.at(explained.path)
                self.log.add(at, explained.message)
            return UNSET
        return CiPolicy(tuple(dict.fromkeys(section.required)), section.timeout)

    def app(
        self, name: str, app: AppSection, repo: str, default_ci: CiPolicy | None
    ) -> tuple[str | None, tuple[str, ...], CiPolicy | None]:
        """The app's GitHub repository, ``paths`` and CI policy."""
        path: YamlPath = ("apps", name)
        repository = app.github or github_repository(repo)
        ci = self.ci(app.ci, (*path, "ci"))
        if repository is None:
            for key, set_here in (("paths", app.paths is not None), ("ci", isinstance(ci, CiPolicy))):
                if set_here:
                    self.log.add(
                        self.doc.key_at((*path, key)),
                        f"app {name!r} sets {key!r} but has no GitHub repository "
                        "(add `github: owner/name`, or a github.com repo URL)",
                    )
        policy = default_ci if ci is UNSET else ci
        assert policy is None or isinstance(policy, CiPolicy)
        return repository, tuple(app.paths or ()), policy if repository else None
