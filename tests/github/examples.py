"""GitHub's own webhook payloads, from the npm package ``@octokit/webhooks-examples`` (pinned).

Fetched once with ``npm pack`` into ``~/.cache/conveyor-tests/`` (``$CONVEYOR_TEST_CACHE`` overrides it),
never into the repository, and read from there afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from tests.tools import require_tool

PACKAGE, VERSION = "@octokit/webhooks-examples", "7.6.1"
EVENTS = ("push", "pull_request", "check_suite", "check_run", "status", "workflow_run", "ping")


def cache_dir() -> Path:
    configured = os.environ.get("CONVEYOR_TEST_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "conveyor-tests"


def webhook_examples() -> dict[str, list[dict[str, Any]]]:
    """Event name -> its example payloads, for the events conveyor reads or ignores on purpose."""
    target = cache_dir() / f"webhooks-examples-{VERSION}"
    index = target / "package" / "api.github.com" / "index.json"
    if not index.exists():
        npm = require_tool("npm")
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target) as tmp:
            subprocess.run(
                [npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"],
                check=True,
                capture_output=True,
                timeout=300,
                cwd=tmp,
            )
            (tarball,) = Path(tmp).glob("*.tgz")
            with tarfile.open(tarball) as archive:
                archive.extractall(target, filter="data")
    entries = json.loads(index.read_text())
    return {e["name"]: e["examples"] for e in entries if e["name"] in EVENTS}
