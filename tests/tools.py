"""Outside programs some tests run for real (Prometheus, Alertmanager, npm for published payloads).

On a user's machine a missing program skips those tests with the package that provides it. CI installs
them (``.ci/run``) and sets ``CONVEYOR_REQUIRE_TOOLS=1``: then a missing program fails the test instead,
so a broken install step can never turn the real-program tests into silent skips.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_TOOLS = os.environ.get("CONVEYOR_REQUIRE_TOOLS") == "1"

# program -> the Debian package that provides it
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "npm": "npm",
    "git": "git",
}


def require_tool(program: str) -> str:
    """The path of ``program``; skips the test when it is missing, or fails it when CI requires tools."""
    path = shutil.which(program)
    if path is not None:
        return path
    package = PACKAGES.get(program, program)
    message = f"{program} is not installed (Debian package {package!r}; .ci/run installs it)"
    if REQUIRE_TOOLS:
        pytest.fail(f"CONVEYOR_REQUIRE_TOOLS=1 but {message}")
    pytest.skip(message)
