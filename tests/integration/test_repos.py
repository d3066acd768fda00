"""RepoMirror against real git repositories in tmp_path."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from conveyor.repos import (
    Commit,
    GitError,
    InvalidRef,
    RepoMirror,
    UnknownRef,
    mirror_path_for,
    validate_ref,
)

HOSTILE_MESSAGE = (
    "Fix $(touch {marker}) and `touch {marker}`; rm -rf / ; echo 'single' \"double\"\n"
    "\n"
    "Body line with a | pipe && an ampersand > redirect < in\n"
    "\ttab-indented, trailing spaces   \n"
    "$HOME ${{IFS}} %s %x00 \\n literal backslash-n\n"
)


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No user or system git config, a fixed identity, and a scratch working directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_AUTHOR_NAME", "A User")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "user@example.org")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "A User")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "user@example.org")
    monkeypatch.chdir(tmp_path)
    yield


class Upstream:
    """A normal repository with a work tree, standing in for the app's origin."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.git("init", "--quiet", "--initial-branch=main")

    def git(self, *args: str) -> str:
        result = subprocess.run(["git", *args], cwd=self.path, capture_output=True, text=True, check=True)
        return result.stdout.strip()

    def commit(self, message: str, *, date: str | None = None) -> str:
        message_file = self.path.parent / "message.txt"
        message_file.write_text(message, encoding="utf-8")
        extra = [f"--date={date}"] if date else []
        self.git("commit", "--quiet", "--allow-empty", "--cleanup=verbatim", "-F", str(message_file), *extra)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    repo = Upstream(tmp_path / "upstream")
    repo.commit("first\n")
    return repo


@pytest.fixture
def mirror(tmp_path: Path, upstream: Upstream) -> RepoMirror:
    m = RepoMirror(mirror_path_for(tmp_path / "state", "shop"), str(upstream.path))
    m.ensure()
    return m


def test_mirror_path_for(tmp_path: Path) -> None:
    assert mirror_path_for(tmp_path, "shop") == tmp_path / "mirrors" / "shop.git"
    for bad in ["", "../etc", "a/b", ".hidden", "a b"]:
        with pytest.raises(ValueError):
            mirror_path_for(tmp_path, bad)


def test_ensure_clones_a_bare_mirror_once(mirror: RepoMirror, upstream: Upstream) -> None:
    assert mirror.path.is_dir()
    bare = subprocess.run(
        ["git", f"--git-dir={mirror.path}", "rev-parse", "--is-bare-repository"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert bare.stdout.strip() == "true"
    upstream.commit("second\n")
    mirror.ensure()  # already there: no clone, no fetch
    assert mirror.resolve("main") != upstream.git("rev-parse", "HEAD")
    assert not [p for p in mirror.path.parent.iterdir() if p.name.endswith(".tmp")]


def test_file_url_works(tmp_path: Path, upstream: Upstream) -> None:
    m = RepoMirror(tmp_path / "m.git", upstream.path.as_uri())
    m.ensure()
    assert m.resolve("main") == upstream.git("rev-parse", "HEAD")


def test_ensure_follows_a_changed_url(tmp_path: Path, mirror: RepoMirror) -> None:
    other = Upstream(tmp_path / "other")
    sha = other.commit("elsewhere\n")
    moved = RepoMirror(mirror.path, str(other.path))
    moved.ensure()
    moved.fetch()
    assert moved.resolve("main") == sha


def test_clone_failure_raises_git_error_and_leaves_nothing(tmp_path: Path) -> None:
    m = RepoMirror(tmp_path / "state" / "mirrors" / "x.git", str(tmp_path / "no-such-repo"))
    with pytest.raises(GitError) as raised:
        m.ensure()
    assert raised.value.stderr
    assert "no-such-repo" in str(raised.value)
    # no mirror and no half-made clone; only the lock file that serialises work on the mirror
    assert [p.name for p in (tmp_path / "state" / "mirrors").iterdir()] == ["x.git.lock"]


def test_resolve_branch_tag_and_shas(mirror: RepoMirror, upstream: Upstream) -> None:
    upstream.git("tag", "-a", "v1.0.0", "-m", "release 1.0.0")  # an annotated tag peels to its commit
    upstream.git("tag", "light")
    mirror.fetch()
    sha = upstream.git("rev-parse", "HEAD")
    assert mirror.resolve("main") == sha
    assert mirror.resolve("refs/heads/main") == sha
    assert mirror.resolve("v1.0.0") == sha
    assert mirror.resolve("light") == sha
    assert mirror.resolve(sha) == sha
    assert mirror.resolve(sha[:8]) == sha
    assert mirror.resolve("HEAD") == sha


@pytest.mark.parametrize("ref", ["nope", "feature/missing", "0000000000000000000000000000000000000000", "abcd"])
def test_unknown_ref(mirror: RepoMirror, ref: str) -> None:
    with pytest.raises(UnknownRef) as raised:
        mirror.resolve(ref)
    assert raised.value.ref == ref
    assert repr(ref) in str(raised.value)


@pytest.mark.parametrize(
    "ref",
    [
        "-h",
        "--upload-pack=touch pwned",
        "--output=pwned",
        "main\n",
        "main branch",
        "main\x00",
        "tab\there",
        "\x1b[31m",
        "",
        "main~1",
        "main^{/regex}",
        ":/first",
        "main@{yesterday}",
        "a..b",
    ],
)
def test_refused_refs_never_reach_git(mirror: RepoMirror, ref: str) -> None:
    with pytest.raises(InvalidRef) as raised:
        mirror.resolve(ref)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, UnknownRef)
    assert not Path("pwned").exists()


def test_fetch_sees_new_commits_and_prunes_deleted_branches(mirror: RepoMirror, upstream: Upstream) -> None:
    old = mirror.resolve("main")
    upstream.git("branch", "topic")
    new = upstream.commit("second\n")
    assert mirror.resolve("main") == old  # not fetched yet
    mirror.fetch()
    assert mirror.resolve("main") == new
    assert mirror.resolve("topic") == old
    upstream.git("branch", "-D", "topic")
    mirror.fetch()
    with pytest.raises(UnknownRef):
        mirror.resolve("topic")


def test_commits_between_round_trips_hostile_messages_exactly(
    tmp_path: Path, mirror: RepoMirror, upstream: Upstream
) -> None:
    marker = tmp_path / "PWNED"
    old = mirror.resolve("main")
    messages = [
        HOSTILE_MESSAGE.format(marker=marker),
        f"no trailing newline; `touch {marker}`",
        "Ünïcödé subject — ✓\n\nwith\n\n\nblank lines\n\n",
    ]
    shas = [upstream.commit(m, date="2030-01-02T03:04:05+02:00") for m in messages]
    mirror.fetch()

    commits = mirror.commits_between(old, shas[-1])

    assert [c.sha for c in commits] == shas  # oldest first
    assert [c.message for c in commits] == messages
    assert commits[0].subject == messages[0].splitlines()[0]
    assert commits[1].subject == messages[1]
    assert commits[0].author_name == "A User"
    assert commits[0].author_email == "user@example.org"
    assert commits[0].authored_at == datetime.fromisoformat("2030-01-02T03:04:05+02:00")
    assert not marker.exists()
    assert not (tmp_path / "touch").exists()


def test_commits_between_without_old_sha_and_limit(mirror: RepoMirror, upstream: Upstream) -> None:
    first = mirror.resolve("main")
    shas = [first] + [upstream.commit(f"change {n}\n") for n in range(5)]
    mirror.fetch()
    everything = mirror.commits_between(None, "main")
    assert [c.sha for c in everything] == shas
    assert all(isinstance(c, Commit) for c in everything)
    assert [c.sha for c in mirror.commits_between(None, "main", limit=2)] == shas[-2:]  # newest two
    assert [c.sha for c in mirror.commits_between(first, "main", limit=3)] == shas[-3:]
    assert mirror.commits_between(shas[-1], shas[-1]) == []


def test_commits_between_unknown_old_sha(mirror: RepoMirror) -> None:
    with pytest.raises(UnknownRef):
        mirror.commits_between("1" * 40, "main")


def test_describe(mirror: RepoMirror, upstream: Upstream) -> None:
    upstream.git("tag", "-a", "v2.0.0", "-m", "two")
    untagged = upstream.commit("after the tag\n")
    mirror.fetch()
    assert mirror.describe("v2.0.0") == "v2.0.0"
    assert mirror.describe(mirror.resolve("v2.0.0")) == "v2.0.0"
    label = mirror.describe(untagged)
    assert len(label) >= 7
    assert untagged.startswith(label)


def branch_names(marker: Path) -> list[str]:
    # Names git accepts (checked below) that a shell would execute; no spaces are allowed in refs.
    return [
        "feature/$(touch${IFS}PWNED)",
        f"feature/$(touch${{IFS}}{marker})",
        "fix/`touch${IFS}PWNED`",
        "a;touch${IFS}PWNED;b",
        "q'\"x|y&z>w<v",
        "$HOME",
    ]


def test_hostile_branch_names_resolve_without_executing_anything(
    tmp_path: Path, mirror: RepoMirror, upstream: Upstream
) -> None:
    marker = tmp_path / "PWNED-ABSOLUTE"
    names = branch_names(marker)
    for name in names:
        upstream.git("check-ref-format", "--allow-onelevel", name)  # git itself accepts the name
        upstream.git("branch", "--", name)
    sha = upstream.git("rev-parse", "HEAD")
    mirror.fetch()
    for name in names:
        assert validate_ref(name) == name
        assert mirror.resolve(name) == sha
        assert mirror.describe(name) == sha[:7]
        assert mirror.commits_between(None, name)[0].sha == sha
    assert not (tmp_path / "PWNED").exists()
    assert not marker.exists()


def test_git_error_carries_stderr(tmp_path: Path) -> None:
    m = RepoMirror(tmp_path / "missing.git", str(tmp_path))
    with pytest.raises(GitError) as raised:
        m.fetch()
    assert raised.value.returncode not in (0, None)
    assert raised.value.stderr


def test_rejects_option_like_urls(tmp_path: Path) -> None:
    for url in ["--upload-pack=touch x", "", "a b"]:
        with pytest.raises(ValueError):
            RepoMirror(tmp_path / "x.git", url)


def test_credentials_in_urls_are_redacted(tmp_path: Path) -> None:
    m = RepoMirror(tmp_path / "x.git", "https://user:s3cret@127.0.0.1:9/repo.git", network_timeout=10)
    assert "s3cret" not in repr(m)
    with pytest.raises(GitError) as raised:
        m.ensure()
    assert "s3cret" not in str(raised.value)


def test_ignores_git_dir_from_the_environment(
    tmp_path: Path, mirror: RepoMirror, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Upstream(tmp_path / "other")
    other.commit("other\n")
    monkeypatch.setenv("GIT_DIR", str(other.path / ".git"))  # as inside a git hook
    assert mirror.resolve("main") == upstream.git("--git-dir", str(upstream.path / ".git"), "rev-parse", "HEAD")
