"""The starter config that ``conveyor init`` writes loads as is."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conveyor.config import STARTER_CONFIG, load_config
from tests.unit.config_fakes import use_fake_plugins


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "conveyor.yaml"
    path.write_text(STARTER_CONFIG, encoding="utf-8")
    return path


def test_starter_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_plugins(monkeypatch)
    config = load_config(_write(tmp_path), {})
    assert len(config.teams) == 1
    assert len(config.apps) == 2
    assert len(config.groups) == 1
    for app in config.apps.values():
        for env in app.environments.values():
            assert env.deploy.driver == "local"
            assert [check.type for check in env.checks] == ["http"]


@pytest.mark.skipif(
    importlib.util.find_spec("conveyor.drivers.local") is None, reason="the local driver is not written yet"
)
def test_starter_config_loads_with_the_real_plugins(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path), {})
    assert set(config.apps) == {"shop", "search"}
