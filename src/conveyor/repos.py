"""Bare mirror clones of each app's repository, read with real git.

conveyor keeps one ``git clone --mirror`` per app under ``<state_dir>/mirrors/<app>.git`` and asks git,
never its files, for what it needs: the SHA a branch or tag points at, the commits between two
releases, a short version label. Drivers check out from the mirror without touching the network.

Refs come from users and webhooks and are untrusted. Invariants:

- git runs from an argv list, never a shell; an untrusted ref is validated first (no leading ``-``, no
  whitespace or control characters, a well-formed ref name or hex SHA per ``git check-ref-format``) and
  then placed after ``--end-of-options`` so git can never read it as an option;
- every call has a timeout and ``GIT_TERMINAL_PROMPT=0``, so a missing credential fails instead of
  hanging; SSH runs in batch mode unless the operator configured ``GIT_SSH_COMMAND``;
- commit fields are read with NUL separators (``git log -z``), so any message text parses exactly.

One mirror is changed (cloned, re-pointed, fetched) by one caller at a time: threads of a process queue on
a lock per mirror path, and processes on one machine on ``fcntl.flock`` of ``<app>.git.lock`` beside the
mirror (git itself refuses concurrent fetches with "cannot lock ref"). A fetch that began after a caller
asked covers that caller, so a burst of releases of one app costs one fetch. On platforms without
``fcntl`` (Windows) only the in-process lock applies. A fetch that fails (for example when history was
rewritten upstream and the mirror lost objects its refs name) is logged with git's stderr and retried once
as a full fetch: every local ref is dropped, objects are kept (checkouts share them), and all refs are
fetched anew.

Exceptions::

    GitError          git failed or timed out; carries git's stderr
    UnknownRef        (LookupError) no branch, tag or commit by that name
     └─ InvalidRef    (also ValueError) the ref was refused before asking git
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: mirrors are serialised within a process only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "Commit",
    "GitError",
    "InvalidRef",
    "RepoMirror",
    "UnknownRef",
    "branch_head",
    "mirror_path_for",
    "redact_url",
]

GIT_TIMEOUT = 60.0  # seconds, for local reads
LS_REMOTE_TIMEOUT = 30.0  # seconds, for asking a remote where a branch points
NETWORK_TIMEOUT = 600.0  # seconds, for clone and fetch
COMMIT_FIELDS = ("%H", "%aN", "%aE", "%aI", "%s", "%B")
# Variables that would point git at some other repository than the one we name.
REPO_LOCATING_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
    "GIT_PREFIX",
)
# Set on every call: no ext:: transport (it runs commands), no colour codes or signatures in output.
SAFE_SETTINGS = (
    "protocol.ext.allow=never",
    "color.ui=false",
    "log.showSignature=false",
    "core.fsmonitor=false",
)
SAFE_CONFIG = tuple(arg for setting in SAFE_SETTINGS for arg in ("-c", setting))
_HEX = re.compile(r"[0-9a-f]{4,40}")
_UNSAFE_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
_URL_USERINFO = re.compile(r"(://)[^/@\s]+@")

log = logging.getLogger(__name__)


class GitError(RuntimeError):
    """A git command failed or timed out. ``stderr`` is what git said."""

    def __init__(self, args: Sequence[str], stderr: str, returncode: int | None = None) -> None:
        self.command = ["git", *args]
        self.stderr = stderr.strip()
        self.returncode = returncode
        status = "timed out" if returncode is None else f"failed (exit {returncode})"
        super().__init__(_redact(f"git {' '.join(args)} {status}: {self.stderr}"))


class UnknownRef(LookupError):
    """No branch, tag or commit called ``ref`` in the mirror."""

    def __init__(self, ref: str, reason: str = "no such branch, tag or commit") -> None:
        self.ref = ref
        super().__init__(f"unknown ref {ref!r}: {reason}")


class InvalidRef(UnknownRef, ValueError):
    """A ref refused before asking git: it could be read as an option or is not a ref name."""


@dataclass(frozen=True)
class Commit:
    sha: str
    author_name: str
    author_email: str
    authored_at: datetime
    subject: str
    message: str


def mirror_path_for(state_dir: Path, app: str) -> Path:
    """Where the mirror of ``app`` lives: ``<state_dir>/mirrors/<app>.git``."""
    if not app or app.startswith(".") or "/" in app or "\\" in app or _UNSAFE_CHARS.search(app):
        raise ValueError(f"app name {app!r} cannot name a mirror folder")
    return state_dir / "mirrors" / f"{app}.git"


def validate_ref(ref: str) -> str:
    """Return ``ref`` if it is safe to hand to git, else raise :class:`InvalidRef`."""
    if not ref:
        raise InvalidRef(ref, "empty ref")
    if ref.startswith("-"):
        raise InvalidRef(ref, "a ref may not start with '-'")
    if _UNSAFE_CHARS.search(ref):
        raise InvalidRef(ref, "a ref may not contain whitespace or control characters")
    if not _HEX.fullmatch(ref) and not _is_ref_name(ref):
        raise InvalidRef(ref, "not a branch name, tag name or commit SHA")
    return ref


class RepoMirror:
    """A bare mirror clone of ``url`` at ``path``. Call :meth:`ensure` before anything else."""

    def __init__(
        self, path: Path, url: str, *, timeout: float = GIT_TIMEOUT, network_timeout: float = NETWORK_TIMEOUT
    ) -> None:
        if not url or url.startswith("-") or _UNSAFE_CHARS.search(url):
            raise ValueError(f"invalid repository URL {_redact(url)!r}")
        self.path = path
        self.url = url
        self.timeout = timeout
        self.network_timeout = network_timeout

    def __repr__(self) -> str:
        return f"RepoMirror({str(self.path)!r}, {_redact(self.url)!r})"

    def ensure(self) -> None:
        """Clone the mirror if it is missing; point an existing one at ``url`` if config changed it."""
        with _holding(self.path):
            self._ensure()

    def fetch(self) -> None:
        """Bring every ref up to date with the origin, dropping refs deleted there."""
        self.update(clone=False)

    def update(self, *, clone: bool = True) -> None:
        """:meth:`ensure` (unless ``clone`` is False) and :meth:`fetch`, holding the mirror once.

        Skips the fetch when another thread's fetch began after this call was made (it saw everything
        this one would). A failed fetch is retried once as a full fetch (see the module docstring).
        """
        asked = time.monotonic()
        with _holding(self.path) as gate:
            if clone:
                self._ensure()
            if gate.fetch_began >= asked:
                return
            began = time.monotonic()
            try:
                self._fetch()
            except GitError as exc:
                log.warning("fetching %s failed, retrying once with a full fetch: %s", self, exc)
                self._drop_refs()
                self._fetch()
            gate.fetch_began = began

    def _ensure(self) -> None:
        if not self.path.exists():
            self._clone()
        elif self._git("config", "--get", "remote.origin.url", check=False) != self.url:
            self._git("remote", "set-url", "origin", self.url)

    def _fetch(self) -> None:
        self._git("fetch", "--prune", "--quiet", "origin", timeout=self.network_timeout)

    def _drop_refs(self) -> None:
        """Delete every local ref, keeping the objects, so the next fetch takes all refs afresh. A ref
        naming an object the mirror lost makes every fetch fail ("bad object"); this is the way out."""
        refs = self._git("for-each-ref", "--format=delete %(refname)", strip=False)
        if refs:
            self._check(["update-ref", "--stdin"], run_git(self._in_mirror(["update-ref", "--stdin"]), stdin_text=refs))

    def resolve(self, ref: str) -> str:
        """The full 40-hex SHA of the commit ``ref`` (branch, tag, short or full SHA) names."""
        validate_ref(ref)
        argv = ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]
        result = self._run(self._in_mirror(argv), self.timeout)
        sha = result.stdout.strip()
        if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha):
            return sha
        if result.returncode in (0, 1):
            raise UnknownRef(ref)
        raise GitError(argv, result.stderr, result.returncode)

    def commits_between(self, old_sha: str | None, new_sha: str, limit: int = 200) -> list[Commit]:
        """Commits reachable from ``new_sha`` but not ``old_sha``, oldest first.

        With ``old_sha`` None, all commits reachable from ``new_sha``. Past ``limit``, the newest
        ``limit`` commits are returned. Raises :class:`UnknownRef` if either is not in the mirror
        (say, history was rewritten upstream); callers may then retry with ``old_sha=None``.
        """
        revisions = [self.resolve(new_sha)]
        if old_sha is not None:
            revisions.append(f"^{self.resolve(old_sha)}")
        fmt = "%x00".join(COMMIT_FIELDS)
        output = self._git(
            "log",
            "-z",
            f"--format={fmt}",
            f"--max-count={max(limit, 0)}",
            "--end-of-options",
            *revisions,
            strip=False,
        )
        return list(reversed(_parse_log(output)))

    def describe(self, sha: str) -> str:
        """A short version label: the tag on ``sha`` if it is exactly tagged, else its short SHA."""
        full = self.resolve(sha)
        tag = self._git("describe", "--tags", "--exact-match", "--end-of-options", full, check=False)
        return tag or self._git("rev-parse", "--short=7", "--end-of-options", full)

    def _clone(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        argv = ["clone", "--mirror", "--quiet", "--", self.url, str(staging)]
        try:
            self._check(argv, self._run([*SAFE_CONFIG, *argv], self.network_timeout))
            try:
                staging.rename(self.path)  # atomic: a half-made clone is never at self.path
            except OSError:
                if not self.path.exists():
                    raise  # otherwise another process cloned it first; theirs is as good
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _git(self, *args: str, timeout: float | None = None, check: bool = True, strip: bool = True) -> str:
        """Run git in the mirror and return its output; "" on failure when ``check`` is False."""
        result = self._run(self._in_mirror(args), timeout or self.timeout)
        if check:
            self._check(args, result)
        elif result.returncode != 0:
            return ""
        return result.stdout.strip() if strip else result.stdout

    def _in_mirror(self, args: Sequence[str]) -> list[str]:
        return [*SAFE_CONFIG, f"--git-dir={self.path}", *args]

    @staticmethod
    def _check(args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        if result.returncode != 0:
            raise GitError(args, result.stderr, result.returncode)

    @staticmethod
    def _run(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return run_git(args, timeout)


def run_git(
    args: Sequence[str], timeout: float = GIT_TIMEOUT, *, stdin_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``git <args>`` without a shell or a terminal; raise :class:`GitError` on timeout."""
    try:
        return subprocess.run(
            ["git", *args],
            input=stdin_text,
            stdin=subprocess.DEVNULL if stdin_text is None else None,
            capture_output=True,
            env=git_environ(),
            timeout=timeout,
            check=False,
            encoding="utf-8",
            errors="replace",
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(args, f"no answer within {timeout:g}s") from exc


def branch_head(url: str, branch: str, timeout: float = LS_REMOTE_TIMEOUT) -> str | None:
    """The SHA ``branch`` points at on the remote ``url`` (``git ls-remote``), None if it has no such branch.

    Raises :class:`GitError` (git's stderr, or "no answer within ...") when the remote cannot be asked.
    """
    if not url or url.startswith("-") or _UNSAFE_CHARS.search(url):
        raise ValueError(f"invalid repository URL {_redact(url)!r}")
    ref = f"refs/heads/{validate_ref(branch)}"
    argv = [*SAFE_CONFIG, "ls-remote", "--end-of-options", url, ref]
    result = run_git(argv, timeout)
    if result.returncode != 0:
        raise GitError(["ls-remote", url, ref], result.stderr, result.returncode)
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name == ref and re.fullmatch(r"[0-9a-f]{40}", sha):
            return sha
    return None


class _MirrorGate:
    """What this process knows about one mirror: its lock, and when the last successful fetch began."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fetch_began = -math.inf  # time.monotonic()


_gates: dict[Path, _MirrorGate] = {}
_gates_lock = threading.Lock()


@contextmanager
def _holding(path: Path) -> Iterator[_MirrorGate]:
    """Hold the mirror at ``path``: its lock in this process, then its lock file against other processes."""
    key = path.absolute()
    with _gates_lock:
        gate = _gates.setdefault(key, _MirrorGate())
    with gate.lock:
        key.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key.with_name(f"{key.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # freed when fd is closed, or when the process dies
            yield gate
        finally:
            os.close(fd)


def git_environ() -> dict[str, str]:
    """conveyor's environment, minus anything pointing git elsewhere, with prompts switched off."""
    env = {k: v for k, v in os.environ.items() if k not in REPO_LOCATING_VARS}
    env["GIT_TERMINAL_PROMPT"] = "0"
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env


def _is_ref_name(ref: str) -> bool:
    # ``ref`` cannot start with "-" here (checked by the caller), so git cannot take it for an option.
    return run_git(["check-ref-format", "--allow-onelevel", ref]).returncode == 0


def _parse_log(output: str) -> list[Commit]:
    if not output:
        return []
    fields = output.split("\x00")
    if fields[-1] == "":
        fields.pop()  # the terminator after the last commit
    width = len(COMMIT_FIELDS)
    if len(fields) % width:
        raise GitError(["log"], f"cannot parse git log output ({len(fields)} fields)")
    return [_commit(fields[i : i + width]) for i in range(0, len(fields), width)]


def _commit(fields: Sequence[str]) -> Commit:
    sha, name, email, authored, subject, message = fields
    sha = sha.lstrip("\n")  # git log -z puts no newline between records, but be lenient
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise GitError(["log"], f"cannot parse git log output: bad SHA {sha[:50]!r}")
    return Commit(sha, name, email, datetime.fromisoformat(authored), subject, message)


def redact_url(text: str) -> str:
    """Hide credentials embedded in a URL (``https://user:token@host``)."""
    return _URL_USERINFO.sub(r"\1***@", text)


_redact = redact_url
