"""Schemathesis fuzzes every operation of ``/openapi.json`` in-process, writes included (with a valid
token): no 5xx, and every response conforms to the schema (status code, content type, body).

Bounded: ``MAX_EXAMPLES`` per operation keeps the whole run to a few hundred requests.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.gitrepos import git
from tests.web.conftest import AUTH, Api

MAX_EXAMPLES = 25
KNOWN_PATH_VALUES = st.fixed_dictionaries(
    {
        "app": st.sampled_from([None, "web", "api"]),
        "release_id": st.one_of(st.none(), st.integers(1, 3)),
        "deployment_id": st.one_of(st.none(), st.integers(1, 8)),
    }
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def api_schema(api: Api) -> Any:
    """The API over a store with something in it: both apps released and worked, web tagged v1.0."""
    git(api.project.repo("web"), "tag", "v1.0")
    api.ok("/api/apps/web/releases")
    api.ok("/api/apps/api/releases")
    api.work()
    return schemathesis.openapi.from_asgi("/openapi.json", api.client.app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_conforms_to_its_schema(api_schema: Any, mode: GenerationMode) -> None:
    # schemathesis' own pytest integration (schema.parametrize) relies on pytest internals that pytest 9
    # removed, so each operation gets a plain Hypothesis test here.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    calls: Counter[str] = Counter()
    unsatisfiable: list[str] = []
    answered: Counter[str] = Counter()
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (operation.path_parameters or operation.query or operation.body):
            continue  # nothing in the request to make invalid

        @given(case=operation.as_strategy(generation_mode=mode), known=KNOWN_PATH_VALUES)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any, known: dict[str, Any]) -> None:
            calls[case.operation.label] += 1
            if case.meta.generation.mode is GenerationMode.POSITIVE:
                # random names rarely hit an app or a row; some cases use ones that exist
                for name, value in known.items():
                    if value is not None and name in (case.path_parameters or {}):
                        case.path_parameters[name] = value
            headers = AUTH
            header_part = case.meta.components.get(ParameterLocation.HEADER)
            if header_part is not None and header_part.mode is GenerationMode.NEGATIVE:
                headers = {}  # the case is about its headers (a token left out): send them as generated
            response = case.call(headers=headers)
            answered[f"{case.operation.method.upper()} {response.status_code}"] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)

        try:
            fuzz()
        except Unsatisfiable:
            # a negative case needs something the schema constrains: a free-form path parameter (an app's
            # name) cannot be made invalid
            assert mode is GenerationMode.NEGATIVE, operation.label
            unsatisfiable.append(operation.label)
    print(f"{mode}: {sum(calls.values())} requests", dict(calls), dict(answered), "none possible:", unsatisfiable)
    assert sum(calls.values()) >= 100
    if mode is GenerationMode.POSITIVE:  # the write paths ran, not only their refusals
        assert answered["POST 201"] + answered["POST 202"] + answered["POST 200"] > 0, answered
