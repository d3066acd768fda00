"""How settings flow down: defaults < app < app.environments.<env>.

- ``vars`` merge key by key; the deeper level wins.
- ``deploy`` blocks: a deeper block naming the same driver as the inherited one (or naming none) is
  merged over it key by key; a deeper block naming a different driver replaces it entirely.
- ``checks``: a list at a deeper level replaces the inherited list wholesale (``checks: []`` removes
  every check).
- ``on_failure``, ``bake`` and ``bake_interval``: the deepest level that sets one wins.

Every merged value remembers the document path it came from, so a problem found after merging still
points at the line the user wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.config.schema import Layer
from conveyor.config.yaml_positions import YamlPath


@dataclass(frozen=True)
class Level:
    """One level of inheritance: its settings and where they are in the document."""

    path: YamlPath
    layer: Layer


@dataclass(frozen=True)
class Sourced:
    value: Any
    path: YamlPath


@dataclass
class MergedDeploy:
    driver: Sourced | None = None
    options: dict[str, Sourced] = field(default_factory=dict)
    anchor: YamlPath = ()  # the deploy block that named the driver: where a missing option is reported


def merge_vars(levels: Sequence[Level]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for level in levels:
        merged.update(level.layer.vars)
    return merged


def var_paths(levels: Sequence[Level]) -> dict[str, YamlPath]:
    """Where each merged var's value was written: the deepest level that sets it."""
    paths: dict[str, YamlPath] = {}
    for level in levels:
        paths.update({name: (*level.path, "vars", name) for name in level.layer.vars})
    return paths


def merge_deploy(levels: Sequence[Level]) -> MergedDeploy:
    merged = MergedDeploy()
    for level in levels:
        block = level.layer.deploy
        if block is None:
            continue
        base = (*level.path, "deploy")
        driver = block.get("driver")
        if driver is not None and (merged.driver is None or driver != merged.driver.value):
            merged = MergedDeploy(Sourced(driver, (*base, "driver")), anchor=base)
        elif merged.driver is None:
            merged.anchor = base
        for key, value in block.items():
            if key != "driver":
                merged.options[key] = Sourced(value, (*base, key))
    return merged


def pick_checks(levels: Sequence[Level]) -> tuple[YamlPath, list[dict[str, Any]]]:
    """The deepest level's check list, and its document path."""
    chosen: tuple[YamlPath, list[dict[str, Any]]] = ((), [])
    for level in levels:
        if level.layer.checks is not None:
            chosen = ((*level.path, "checks"), level.layer.checks)
    return chosen


def pick_setting(levels: Sequence[Level], name: str) -> Sourced | None:
    """A plain setting (``on_failure``, ``bake``, ...): the deepest level that sets it wins."""
    chosen: Sourced | None = None
    for level in levels:
        value = getattr(level.layer, name)
        if value is not None:
            chosen = Sourced(value, (*level.path, name))
    return chosen
