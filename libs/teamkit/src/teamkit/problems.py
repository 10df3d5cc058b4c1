"""RFC 9457 problem details: one error hierarchy and the handlers that render it."""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://team.example/problems/"
#: Where routes point for the shared Problem schema (the app adds it to every document).
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"

log = structlog.get_logger(__name__)


class ProblemError(Exception):
    """An error that knows its HTTP status; rendered as problem+json by one handler."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = TYPE_BASE + "internal"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """Return the problem document for this error."""
        document: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance is not None:
            document["instance"] = instance
        document.update(self.extensions)
        return document


class BadRequest(ProblemError):
    """The request is malformed in a way validation does not describe."""

    status = 400
    type = TYPE_BASE + "bad-request"
    title = "Bad request"


class Unauthorized(ProblemError):
    """No valid bearer token was presented."""

    status = 401
    type = TYPE_BASE + "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str, *, error: str = "invalid_token", **extensions: Any) -> None:
        # The description is a quoted-string in a header: no quotes, backslashes or non-ASCII.
        safe = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "?" for c in detail)
        challenge = f'Bearer error="{error}", error_description="{safe}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge}, **extensions)


class Forbidden(ProblemError):
    """The caller is known but may not do this."""

    status = 403
    type = TYPE_BASE + "forbidden"
    title = "Forbidden"


class NotFound(ProblemError):
    """The named resource does not exist (or is invisible to the caller)."""

    status = 404
    type = TYPE_BASE + "not-found"
    title = "Not found"


class Conflict(ProblemError):
    """The resource's current state forbids the change."""

    status = 409
    type = TYPE_BASE + "conflict"
    title = "Conflict"


class PayloadTooLarge(ProblemError):
    """The body exceeds the configured bound."""

    status = 413
    type = TYPE_BASE + "payload-too-large"
    title = "Payload too large"


class Unprocessable(ProblemError):
    """The body is well-formed but names values that cannot be used."""

    status = 422
    type = TYPE_BASE + "validation"
    title = "Unprocessable request"


class ServiceUnavailable(ProblemError):
    """A dependency this request needs is down; retrying later may work."""

    status = 503
    type = TYPE_BASE + "unavailable"
    title = "Service unavailable"


class FieldError(BaseModel):
    """One validation failure of a 422 problem: where, what and the pydantic error type."""

    loc: list[str | int] = Field(description="Path to the value, e.g. ['body', 'account_id'].")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document: every 4xx/5xx answer of every service has this shape.

    Extensions sit beside the standard members: `errors` (422 validation), `reasons` (a denied
    request), `existing_request_id` (409 duplicate), `required_scopes` (403 scope) and others
    named in each operation's description. Clients must ignore extensions they do not know.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": TYPE_BASE + "conflict",
                    "title": "Conflict",
                    "status": 409,
                    "detail": "The request is approved; only pending requests can be approved.",
                    "instance": "/v1/requests/0b9d5a52-6f0e-4a43-9a55-3f0c2b1f7c11/approve",
                }
            ]
        },
    )

    type: str = Field(description="URI naming the problem kind; stable, compare on it.")
    title: str = Field(description="Short human summary of the problem kind.")
    status: int = Field(description="The HTTP status code, repeated.")
    detail: str = Field(description="What went wrong in this occurrence and how to fix it.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[FieldError] | None = Field(
        default=None, description="422 only: every validation failure."
    )


#: What a status means when a route does not say more.
_STATUS_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request, e.g. a cursor this API did not return.",
    401: "No valid bearer token; the WWW-Authenticate header says why.",
    403: "Authenticated, but the caller's role or scopes do not allow this.",
    404: "No such resource, or it is not visible to the caller.",
    409: "The resource's current state forbids this change.",
    413: "The body is larger than the service accepts.",
    422: "The request fails validation; `errors` lists every problem.",
    428: "A precondition header (If-Match) is required.",
    500: "Unexpected server error (logged; no internals are returned).",
    503: "A dependency is unavailable; retry later (see Retry-After).",
}


def problem_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries declaring `application/problem+json` answers with the Problem schema.

    `descriptions` overrides the generic text of a status for this route. The `Problem` schema
    itself is added to the document by `teamkit.app` (see `PROBLEM_SCHEMA_REF`).
    """
    overrides = dict(descriptions or {})
    unknown = set(overrides) - set(statuses)
    if unknown:
        raise ValueError(f"descriptions for undeclared statuses: {sorted(unknown)}")
    return {
        status: {
            "description": overrides.get(
                status, _STATUS_DESCRIPTIONS.get(status, HTTPStatus(status).phrase)
            ),
            "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
        }
        for status in statuses
    }


def problem_response(
    status: int,
    detail: str,
    *,
    type_: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """Build a problem+json response for a status that has no ProblemError subclass."""
    body: dict[str, Any] = {
        "type": type_ or f"{TYPE_BASE}http-{status}",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extensions,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)  # noqa: S101 - registered for ProblemError only
    return JSONResponse(
        exc.body(instance=request.url.path),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers=exc.headers,
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404:
        detail = f"No resource at {request.url.path}. Check the path against the OpenAPI document."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    return problem_response(exc.status_code, detail, instance=request.url.path, headers=exc.headers)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = [
        {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(str(part) for part in first["loc"]) or "request"
    detail = f"{where}: {first['msg']}"
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problem(s), see 'errors')"
    return problem_response(
        422,
        detail,
        type_=TYPE_BASE + "validation",
        title="Unprocessable request",
        instance=request.url.path,
        errors=errors,
    )


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("http.unhandled_error", path=request.url.path, method=request.method)
    return problem_response(
        500,
        "The server hit an unexpected error; it has been logged. Retry, or report the time "
        "and path to an operator.",
        type_=TYPE_BASE + "internal",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error raised in `app` as problem+json, never leaking internals."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(Exception, _on_unhandled)
