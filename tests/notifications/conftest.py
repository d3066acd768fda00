"""Fixtures shared by the notification tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a fresh directory, where configs written by a test resolve their relative paths."""
    monkeypatch.chdir(tmp_path)
