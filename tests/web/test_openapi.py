"""``/openapi.json`` describes what the server accepts: environment names are the configured enum, and every
ref the description allows is one git's own rules accept (so only a missing one is refused, with 404)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.repos import InvalidRef, validate_ref
from conveyor.web.models import REF_PATTERN
from tests.web.conftest import Api

ENVIRONMENTS = ["integration", "staging", "production"]


def string_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The string member of ``anyOf: [string, null]``, or the schema itself."""
    found: dict[str, Any] = next((s for s in schema.get("anyOf", []) if s.get("type") == "string"), schema)
    return found


def test_environment_names_are_the_configured_enum_everywhere(api: Api) -> None:
    spec = api.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    why = {p["name"]: p["schema"] for p in spec["paths"]["/api/apps/{app}/why"]["get"]["parameters"]}
    for schema in (
        schemas["DeployRequest"]["properties"]["environment"],
        schemas["PromoteRequest"]["properties"]["to"],
        schemas["UnblockRequest"]["properties"]["environment"],
        why["environment"],
    ):
        assert string_schema(schema)["enum"] == ENVIRONMENTS
    assert "x-conveyor-environment" not in str(spec)


def test_every_write_describes_413_and_the_release_a_missing_ref(api: Api) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for action in ("releases", "deploy", "promote", "unblock"):
        responses = paths[f"/api/apps/{{app}}/{action}"]["post"]["responses"]
        assert {"401", "404", "409", "413", "422"} <= set(responses), (action, sorted(responses))


@given(ref=st.from_regex(REF_PATTERN, fullmatch=True).filter(lambda r: len(r) <= 255))
@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_every_ref_the_description_allows_passes_gits_rules(ref: str) -> None:
    assert validate_ref(ref) == ref


@pytest.mark.parametrize("ref", ["-x", "a..b", "x.lock", "a/b.lock", ".hidden", "a/", "a//b", "a b", "a@{1}", "a~1"])
def test_refs_git_refuses_are_outside_the_description(ref: str) -> None:
    assert not re.fullmatch(REF_PATTERN, ref)
    with pytest.raises(InvalidRef):
        validate_ref(ref)


@pytest.mark.parametrize("ref", ["main", "v1.0", "release/2026.11", "feature/x-y_z", "lock", "a.lockx", "0" * 40])
def test_common_refs_are_in_the_description(ref: str) -> None:
    assert re.fullmatch(REF_PATTERN, ref)
