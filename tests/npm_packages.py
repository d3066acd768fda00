"""Files from published npm packages (GitHub's own OpenAPI description, webhook examples), for tests.

A package is fetched once with ``npm pack`` into a cache outside the repository (``CONVEYOR_TEST_CACHE``,
default ``~/.cache/conveyor-tests``) and the files a test needs are unpacked beside it; nothing fetched is
ever committed. Without npm (a user's machine) the tests that need a package skip; in CI they fail
(:func:`tests.tools.require_tool`).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

from tests.tools import require_tool

CACHE = Path(os.environ.get("CONVEYOR_TEST_CACHE", "~/.cache/conveyor-tests")).expanduser()


def npm_package_file(spec: str, member: str) -> Path:
    """The file ``member`` (a path inside the package, without ``package/``) of the npm package ``spec``
    (``name@version``: always pin the version), fetched and unpacked on first use."""
    folder = CACHE / spec.lstrip("@").replace("/", "-").replace("@", "-")
    target = folder / member
    if target.exists():
        return target
    npm = require_tool("npm")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        packed = subprocess.run(
            [npm, "pack", spec, "--pack-destination", scratch, "--silent"],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        tarball = Path(scratch) / packed.stdout.strip().splitlines()[-1]
        with tarfile.open(tarball) as archive:
            source = archive.extractfile(f"package/{member}")
            assert source is not None, f"{spec} has no {member}"
            partial = Path(scratch) / "partial"
            partial.write_bytes(source.read())
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.replace(target)  # whole or not at all, even when two test runs fetch at once
    return target
