"""GitHub's own OpenAPI description of its REST API (npm ``@octokit/openapi``), to hold requests to.

Every request the stand-in gets is validated against it with openapi-core (path, method, parameters,
body), and every answer is built from the examples it gives for that operation and status.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.npm_packages import npm_package_file

PACKAGE = "@octokit/openapi@23.0.2"
MEMBER = "generated/api.github.com.json"


def description_path() -> Path:
    return npm_package_file(PACKAGE, MEMBER)


@dataclass
class _Request:
    """A request in the shape openapi-core reads (its ``Request`` protocol)."""

    method: str
    path: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)
    host_url: str = "https://api.github.com"  # the description's server: the path is what is checked


class GitHubDescription:
    def __init__(self, path: Path) -> None:
        self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self.api = OpenAPI.from_dict(self.document, config=Config(spec_validator_cls=None))
        self._lock = threading.Lock()  # openapi-core is not documented as thread-safe
        self._templates = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "([^/]+)", re.escape(p)) + "$"), p)
            for p in sorted(self.document["paths"], key=lambda p: p.count("{"))  # the most literal first
        ]

    def problems(
        self, method: str, path: str, query: list[tuple[str, str]], headers: list[tuple[str, str]], body: bytes | None
    ) -> list[str]:
        """What is wrong with this request according to GitHub's description (empty: nothing)."""
        request = _Request(
            method.lower(),
            path,
            body or None,
            "application/json" if body else "",
            RequestParameters(query=ImmutableMultiDict(query), header=Headers(headers)),
        )
        with self._lock:
            try:
                result = self.api.unmarshal_request(request)
            except Exception as exc:  # no such path or operation
                return [f"{method} {path}: {type(exc).__name__}: {exc}"]
        return [f"{method} {path}: {_explain(error)}" for error in result.errors]

    def template(self, path: str) -> str | None:
        """The description's path template for ``path`` (``/repos/{owner}/{repo}/deployments``)."""
        for pattern, template in self._templates:
            if pattern.match(path):
                return template
        return None

    def example(self, template: str, method: str, status: int) -> Any:
        """A fresh copy of the (first) example the description gives for that answer."""
        response = self.document["paths"][template][method.lower()]["responses"][str(status)]
        response = self._resolve(response)
        examples = response["content"]["application/json"]["examples"]
        first = self._resolve(next(iter(examples.values())))
        return copy.deepcopy(first["value"])

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node


def _explain(error: Exception) -> str:
    causes = [str(c) for c in getattr(error, "schema_errors", ()) or ()]
    cause = error.__cause__
    while cause is not None and not causes:
        causes = [str(c) for c in getattr(cause, "schema_errors", ()) or ()] or [str(cause)]
        cause = cause.__cause__
    return f"{type(error).__name__}: {error}" + (f" ({'; '.join(causes)[:500]})" if causes else "")
