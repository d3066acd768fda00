"""The ``prometheus`` check: one instant PromQL query, judged by conditions over its result.

The query (``{app}``, ``{env}``, vars and ``{version}``/``{sha}`` filled in) goes to ``address`` as
``GET /api/v1/query?query=...`` (Prometheus's HTTP API v1). An instant vector becomes ``result``, a list
of floats sorted by their labels (``labels`` holds those, in the same order); a scalar becomes a list of
one. Conditions (:mod:`conveyor.checks.conditions`) then decide, as in Argo Rollouts:

- ``failure`` true → ``fail``; else ``success`` true → ``pass``;
- with only ``success``: false → ``fail``; with only ``failure``: false → ``pass``;
- with both and neither true → ``inconclusive``.

An empty result (no series matched: no traffic yet, a typo in a label) is ``inconclusive`` by default,
or what ``empty`` says. Phase ``error``: Prometheus cannot be reached or times out, answers something
that is not its API, rejects the query (its message is given: a PromQL syntax error, an unknown
function), returns a range vector or a string, or a condition cannot be evaluated on the result.

The measurement's message carries the query as sent and the values; ``value`` is the values as JSON.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator, model_validator

from conveyor.checks.base import Check, CheckRequest
from conveyor.checks.conditions import Condition, ConditionError, compile_condition
from conveyor.checks.reading import RequestHeaders, Unreachable, get
from conveyor.checks.release_text import RELEASE_PLACEHOLDERS, UnsafeReleaseText, fill_release
from conveyor.domain.model import Measurement
from conveyor.steps import StepContext

__all__ = ["PrometheusCheck", "PrometheusOptions", "QueryResult", "judge_result"]

SHOWN_VALUES = 10  # values shown in a message; the rest are counted
ConditionText = Annotated[Condition, PlainSerializer(str, return_type=str)]


class PrometheusOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    address: str
    query: str = Field(min_length=1)
    success: ConditionText | None = None
    failure: ConditionText | None = None
    empty: Literal["inconclusive", "pass", "fail"] = "inconclusive"
    timeout: float = Field(default=10, gt=0)
    headers: RequestHeaders

    @field_validator("address")
    @classmethod
    def _http_address(cls, address: str) -> str:
        if not address.startswith(("http://", "https://")):
            raise ValueError(f"address must start with http:// or https://, got {address!r}")
        return address.rstrip("/")

    @field_validator("success", "failure", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return compile_condition(value)
            except ConditionError as exc:
                raise ValueError(str(exc)) from None
        if value is None or isinstance(value, Condition):
            return value
        raise ValueError("a condition must be a string such as 'result[0] < 0.01'")

    @model_validator(mode="after")
    def _a_condition(self) -> PrometheusOptions:
        if self.success is None and self.failure is None:
            raise ValueError("give success, failure or both (e.g. success: 'result[0] < 0.01')")
        return self


class QueryResult(BaseModel):
    """What one instant query returned: the values and their labels, in the same order."""

    values: list[float]
    labels: list[dict[str, str]]


class QueryFailed(Exception):
    """Prometheus could not answer the query; the message says why."""


class PrometheusCheck(Check):
    """Run ``query`` against ``address`` and judge ``result`` with ``success`` / ``failure``."""

    name = "prometheus"
    Options = PrometheusOptions
    release_placeholders = RELEASE_PLACEHOLDERS

    def measure(self, request: CheckRequest, ctx: StepContext) -> Measurement:
        opts = cast(PrometheusOptions, request.options)
        try:
            query = fill_release(opts.query, request)
        except UnsafeReleaseText as exc:
            return Measurement.errored(str(exc))
        try:
            result = instant_query(opts.address, query, opts.timeout, opts.headers)
        except QueryFailed as exc:
            return Measurement.errored(f"query {query!r}: {exc}")
        return judge_result(query, result, opts)


def instant_query(address: str, query: str, timeout: float, headers: dict[str, str]) -> QueryResult:
    """``query`` at ``address`` now; :class:`QueryFailed` for every way it can go wrong."""
    try:
        response = get(address, "/api/v1/query", [("query", query)], headers, timeout)
    except Unreachable as exc:
        raise QueryFailed(str(exc)) from None
    url = response.url
    try:
        body = response.json()
    except ValueError:
        raise QueryFailed(f"HTTP {response.status_code} from {url} is not Prometheus's JSON") from None
    if not isinstance(body, dict):
        raise QueryFailed(f"HTTP {response.status_code} from {url} is not Prometheus's JSON")
    if body.get("status") != "success":
        kind, error = body.get("errorType", "error"), body.get("error", f"HTTP {response.status_code}")
        raise QueryFailed(f"Prometheus refused it ({kind}): {error}")
    return _parse_data(body.get("data"))


def _parse_data(data: Any) -> QueryResult:
    if not isinstance(data, dict):
        raise QueryFailed("the answer has no data")
    kind, raw = data.get("resultType"), data.get("result")
    raw = cast(Any, raw)
    try:
        if kind == "scalar":
            return QueryResult(values=[_number(raw[1])], labels=[{}])
        if kind == "vector":
            samples = sorted(raw, key=lambda s: sorted(s.get("metric", {}).items()))
            return QueryResult(
                values=[_number(s["value"][1]) for s in samples],
                labels=[{str(k): str(v) for k, v in s.get("metric", {}).items()} for s in samples],
            )
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        raise QueryFailed(f"cannot read a {kind} result from the answer") from None
    if kind == "matrix":
        raise QueryFailed("the query returns a range vector; conditions need an instant vector or a scalar")
    raise QueryFailed(f"the query returns a {kind}; conditions need an instant vector or a scalar")


def _number(text: Any) -> float:
    return float(text)  # Prometheus writes samples as strings: "0.25", "NaN", "+Inf"


def judge_result(query: str, result: QueryResult, opts: PrometheusOptions) -> Measurement:
    """The phase of one query's result under ``opts``'s conditions (pure)."""
    shown = _shown(result.values)
    value = json.dumps([None if math.isnan(v) else v for v in result.values], allow_nan=True)
    said = f"query {query!r} gave {shown}"
    if not result.values:
        message = f"query {query!r} returned no data"
        if opts.empty == "pass":
            return Measurement.passed(f"{message} (empty: pass)", value=value)
        if opts.empty == "fail":
            return Measurement.failed(f"{message} (empty: fail)", value=value)
        return Measurement.inconclusive(f"{message} (no series matched yet)", value=value)
    try:
        failed = opts.failure is not None and opts.failure.holds(result.values, result.labels)
        if failed:
            return Measurement.failed(f"{said}: failure condition `{opts.failure}` is true", value=value)
        if opts.success is not None:
            if opts.success.holds(result.values, result.labels):
                return Measurement.passed(f"{said}: success condition `{opts.success}` is true", value=value)
            if opts.failure is None:
                return Measurement.failed(f"{said}: success condition `{opts.success}` is false", value=value)
            return Measurement.inconclusive(
                f"{said}: neither `{opts.success}` nor `{opts.failure}` is true", value=value
            )
    except ConditionError as exc:
        return Measurement.errored(f"{said}: {exc}", value=value)
    return Measurement.passed(f"{said}: failure condition `{opts.failure}` is false", value=value)


def _shown(values: list[float]) -> str:
    text = ", ".join(f"{v:.6g}" for v in values[:SHOWN_VALUES])
    more = f", ... ({len(values)} values)" if len(values) > SHOWN_VALUES else ""
    return f"[{text}{more}]"
