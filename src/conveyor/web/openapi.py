"""What ``/openapi.json`` says beyond the static models: the values only the config knows.

A schema-valid request should be one the server can accept. Environment names are the configured ones,
so every schema marked :data:`ENVIRONMENT` becomes an ``enum`` of them when the description is built: a
client (or a fuzzer) learns them from the description, and an unknown environment is a request the
description already calls invalid (``422``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

ENVIRONMENT = "x-conveyor-environment"  # a marker, replaced by the enum of configured environments


class EnvironmentSchema:
    """Marks a string as an environment name in the JSON schema (``Annotated[str, EnvironmentSchema()]``)."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema[ENVIRONMENT] = True
        return schema


class SchemaPattern:
    """Describes a string by ``pattern`` in the JSON schema only: the server checks the value itself and
    answers its own message (a ref is checked by git's rules, with a message naming the rule)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = self.pattern
        return schema


def describe_environments(app: FastAPI, environments: Sequence[str]) -> None:
    """Make ``app``'s ``/openapi.json`` list ``environments`` wherever an environment name goes."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_enum(build(), list(environments))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


def _with_enum(node: Any, environments: list[str]) -> Any:
    if isinstance(node, dict):
        if node.pop(ENVIRONMENT, False):
            node["enum"] = environments
        return {key: _with_enum(value, environments) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_enum(item, environments) for item in node]
    return node
