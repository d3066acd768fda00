"""docs/configuration.md documents every key the config file accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
MODELS = [
    schema.FileSection,
    schema.TeamSection,
    schema.GroupSection,
    schema.DefaultsSection,
    schema.AppSection,
    schema.EnvironmentSection,
    schema.CheckEntry,
]


@pytest.mark.parametrize("key", sorted({key for model in MODELS for key in schema.keys_of(model)}))
def test_every_key_is_documented(key: str) -> None:
    assert f"`{key}`" in DOC.read_text(encoding="utf-8")
