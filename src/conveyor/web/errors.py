"""Every error the API returns has one shape: ``{"error": {"code", "message", ...}}``, never a traceback.

| code | status | raised for |
|---|---|---|
| ``invalid`` | 422 | a body, query or path value that fails validation (``field`` names it), an unknown |
|  |  | environment, a malformed git ref, an operation refused for its input; a body that is not |
|  |  | JSON, not an object or not sent as ``application/json`` (``field: "body"``) |
| ``unauthorized`` | 401 | a write without a valid bearer token |
| ``too_large`` | 413 | a body larger than ``api.max_body_bytes`` |
| ``not_found`` | 404 | an unknown app, release, deployment, git ref or route |
| ``method_not_allowed`` | 405 | a method the route does not have |
| ``conflict`` | 409 | an operation the current state refuses (nothing to promote, held, not blocked) |
| ``git_failed`` | 502 | git could not fetch or read the app's repository |
| ``unavailable`` | 503 | the database cannot be reached |
| ``internal`` | 500 | anything else; the details go to the log only |
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from conveyor.config import UnknownName
from conveyor.errors import OperationError
from conveyor.repos import GitError, InvalidRef, UnknownRef
from conveyor.store.database import DatabaseUnreachable

log = logging.getLogger(__name__)

OPERATION_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409}
HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None  # the request field at fault: "app", "environment", "ref", "reason", ...
    decision: dict[str, Any] | None = None  # on a refused promotion: the latest Decision for the app


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An error answered as is: ``status`` with ``{"error": {"code", "message", ...}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        decision: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field, self.decision, self.headers = field, decision, headers

    def response(self) -> JSONResponse:
        detail = ErrorDetail(code=self.code, message=self.message, field=self.field, decision=self.decision)
        return JSONResponse(
            ErrorResponse(error=detail).model_dump(exclude_none=True), status_code=self.status, headers=self.headers
        )


def from_exception(exc: Exception) -> ApiError:
    """The API error for an exception the core raises; unexpected ones become a generic 500."""
    match exc:
        case ApiError():
            return exc
        case UnknownName(kind="app"):
            return ApiError(404, "not_found", str(exc), field="app")
        case UnknownName():
            return ApiError(422, "invalid", str(exc), field=exc.kind)
        case OperationError():
            message = str(exc)
            if exc.field is not None:  # the API names the field where the CLI names its option
                message = message.replace(f"--{exc.field}", exc.field)
            return ApiError(OPERATION_STATUS.get(exc.code, 422), exc.code, message, field=exc.field)
        case InvalidRef():
            return ApiError(422, "invalid", str(exc), field="ref")
        case UnknownRef():  # a well-formed name the repository does not have
            return ApiError(404, "not_found", str(exc), field="ref")
        case GitError():
            return ApiError(502, "git_failed", first_line(exc))
        case DatabaseUnreachable() | OperationalError():
            log.warning("database unavailable: %s", first_line(exc))
            return ApiError(503, "unavailable", "the database cannot be reached")
    # Starlette re-raises what reaches the catch-all handler after it answered, so the server logs the
    # traceback; the body stays generic.
    return ApiError(500, "internal", "internal error; the server log has the details")


def first_line(exc: BaseException) -> str:
    """The first line of an error (of the driver's error, for a database one), for a one-line message."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def validation_error(exc: RequestValidationError, content_type: str | None = None) -> ApiError:
    """422 naming the first field at fault, e.g. ``environment: Field required``; a body that is not a JSON
    object (or not sent as JSON: ``content_type``) is named ``body``."""
    errors = list(exc.errors())
    if not errors:
        return ApiError(422, "invalid", "invalid request")
    first = errors[0]
    whole_body = body_error(first, content_type)
    if whole_body is not None:
        return ApiError(422, "invalid", f"body: {whole_body}", field="body")
    loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = ".".join(loc) or None
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return ApiError(422, "invalid", f"{field}: {message}{more}" if field else f"{message}{more}", field=field)


NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})  # pydantic's error types


def body_error(error: Mapping[str, Any], content_type: str | None) -> str | None:
    """What is wrong with the body as a whole (not JSON, not an object, not sent as JSON), else None."""
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":
        return f"invalid JSON: {error.get('ctx', {}).get('error', 'cannot be parsed')} at character {loc[-1]}"
    if loc[:1] != ("body",) or error.get("type") not in NOT_AN_OBJECT:
        return None  # a field of the body
    media_type = (content_type or "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        shown = f"got {media_type}" if media_type else "none was given"
        return f"send a JSON object with Content-Type: application/json ({shown})"
    return f"must be a JSON object, got {_json_type(error.get('input'))}"


def _json_type(value: object) -> str:
    match value:
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
        case None:
            return "null"
    return "something else"


def install_error_handlers(app: FastAPI) -> None:
    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_error(exc, request.headers.get("content-type")).response()

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 400:  # a body FastAPI could not even parse: as invalid as a wrong field
            return ApiError(422, "invalid", f"body: {exc.detail}", field="body").response()
        code = HTTP_CODES.get(exc.status_code, "invalid" if exc.status_code < 500 else "internal")
        field = "body" if exc.status_code == 413 else None
        return ApiError(exc.status_code, code, str(exc.detail), field=field, headers=exc.headers).response()

    async def on_error(_request: Request, exc: Exception) -> JSONResponse:
        return from_exception(exc).response()

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    for known in (ApiError, UnknownName, OperationError, UnknownRef, GitError, DatabaseUnreachable, OperationalError):
        app.add_exception_handler(known, on_error)
    app.add_exception_handler(Exception, on_error)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route may answer."""
    return {status: {"model": ErrorResponse, "description": HTTP_CODES.get(status, "error")} for status in statuses}
