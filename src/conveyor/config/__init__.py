"""Configuration: ``conveyor.yaml`` read, validated and resolved into :class:`Config`.

``load_config(path)`` returns the resolved config or raises :class:`ConfigError`, whose ``problems``
list every problem in the file as ``FILE:LINE:COL: message``. See docs/configuration.md for the format.
"""

from __future__ import annotations

from conveyor.config.errors import ConfigError, Problem
from conveyor.config.loader import load_config
from conveyor.config.resolved import (
    AppConfig,
    AppEnvironment,
    CheckSpec,
    Config,
    DeploySpec,
    TeamConfig,
    UnknownName,
)
from conveyor.config.starter import STARTER_CONFIG

__all__ = [
    "STARTER_CONFIG",
    "AppConfig",
    "AppEnvironment",
    "CheckSpec",
    "Config",
    "ConfigError",
    "DeploySpec",
    "Problem",
    "TeamConfig",
    "UnknownName",
    "load_config",
]
