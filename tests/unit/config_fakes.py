"""Stand-in plugins for the config tests: tiny Options models registered under the built-in names.

The config loader must not depend on the real drivers and checks (written separately), so these tests
replace :func:`conveyor.plugins._load` with this registry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from conveyor import plugins
from conveyor.config import Config, ConfigError, load_config


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalOptions(_Options):
    start: Annotated[list[str], Field(min_length=1)]
    cwd: str | None = None
    ready_timeout: float = 10.0


class CommandOptions(_Options):
    argv: Annotated[list[str], Field(min_length=1)]
    timeout: float = 600.0
    env: dict[str, str] = Field(default_factory=dict)


class HttpOptions(_Options):
    url: str
    expect_status: int = 200
    timeout: float | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class FakeOptions(_Options):
    outcome: str = "pass"


def _plugin(name: str, options: type[BaseModel]) -> type[Any]:
    return type(name, (), {"name": name, "Options": options})


REGISTRY: dict[str, dict[str, Any]] = {
    plugins.DRIVER_GROUP: {
        "local": _plugin("local", LocalOptions),
        "command": _plugin("command", CommandOptions),
        "fake": _plugin("fake", FakeOptions),
    },
    plugins.CHECK_GROUP: {
        "http": _plugin("http", HttpOptions),
        "command": _plugin("command", CommandOptions),
        "fake": _plugin("fake", FakeOptions),
    },
    plugins.NOTIFIER_GROUP: {
        "log": _plugin("log", _Options),
    },
}


def use_fake_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "_load", lambda group: REGISTRY[group])


def load(text: str, environ: dict[str, str] | None = None) -> Config:
    """Write ``conveyor.yaml`` in the current folder (tests chdir to tmp_path) and load it."""
    Path("conveyor.yaml").write_text(text, encoding="utf-8")
    return load_config(Path("conveyor.yaml"), environ or {})


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    """Every problem the loader reports for ``text``, as ``conveyor.yaml:LINE:COL: message``."""
    with pytest.raises(ConfigError) as caught:
        load(text, environ)
    return [str(problem) for problem in caught.value.problems]
