"""The JSON API under /api, described by the OpenAPI document at /api/openapi.json.

Callers authenticate with the session cookie (then unsafe methods need the `X-CSRFToken` header) or
with `Authorization: Bearer <token>` from `flask --app app users token EMAIL`. Every error is JSON:
`{"error": {"code": ..., "message": ...}}` with a 4xx status.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from apiflask import APIBlueprint
from apiflask.exceptions import HTTPError
from apiflask.fields import Boolean
from flask import Flask, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from extensions import csrf

bp = APIBlueprint("api", __name__, url_prefix="/api")

# Machine-readable codes for the statuses the API answers with.
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "server_error",
}


class ApiError(HTTPError):
    """An API failure with a stable machine-readable code."""

    def __init__(self, status_code: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(status_code, message, extra_data={"code": code or ERROR_CODES.get(status_code)})
        self.extra = extra


def json_boolean(**options: Any) -> Boolean:
    """A boolean of a JSON body: only JSON's true and false, not "yes", "on" or "1" as marshmallow allows."""
    return Boolean(truthy={True}, falsy={False}, **options)


def abort_api(status_code: int, message: str, code: str | None = None) -> NoReturn:
    """Stop the request with a JSON error."""
    raise ApiError(status_code, message, code)


def error_body(status_code: int, message: str, code: str | None = None, detail: Any = None) -> dict[str, Any]:
    """Build the JSON error body every API failure uses."""
    error: dict[str, Any] = {"code": code or ERROR_CODES.get(status_code, "error"), "message": message}
    if detail:
        error["detail"] = detail
    return {"error": error}


def _error_schema(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "detail": detail},
            }
        },
    }


# What the OpenAPI document says error bodies look like; `api_error` below produces exactly this.
HTTP_ERROR_SCHEMA = _error_schema({"type": "object"})
VALIDATION_ERROR_SCHEMA = _error_schema(
    {
        "type": "object",
        "description": "field messages by location (json, query, path), then by field name",
        "additionalProperties": {"type": "object", "additionalProperties": {"type": "array"}},
    }
)


def _uses_bearer_token() -> bool:
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


@bp.before_request
def require_signed_in_user() -> None:
    """Refuse anonymous callers, and cookie-authenticated writes without a CSRF token."""
    if not current_user.is_authenticated:
        abort_api(401, "Sign in, or send Authorization: Bearer <token>.")
    if request.method not in {"GET", "HEAD", "OPTIONS"} and not _uses_bearer_token():
        try:
            validate_csrf(request.headers.get("X-CSRFToken"))
        except (ValidationError, CSRFError) as error:
            abort_api(403, f"CSRF check failed: {error}", "csrf_failed")


@bp.before_request
def refuse_malformed_json() -> None:
    """Say that a JSON body does not parse, and where (the parser's own 400 says only "not understood");
    refuse a body of another type, which would otherwise be ignored as if no body had come (curl's
    default form type made POST /api/reviews run today's review instead of the day it asked for)."""
    if not request.is_json and request.get_data(cache=True):
        abort_api(
            415,
            f"The request body must be JSON, sent with Content-Type: application/json "
            f"(this one came as {request.mimetype or 'no type'!r}).",
        )
    if request.is_json and request.get_data(cache=True):
        try:
            json.loads(request.get_data(cache=True))
        except ValueError as error:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
            abort_api(400, f"The request body is not valid JSON: {error}", "invalid_json")


def init_app(app: Flask) -> None:
    """Register the API blueprint, its routes and its JSON error format."""
    from web.api import accounts, dashboard, links, reviews, strategies  # noqa: F401  (routes on bp)

    csrf.exempt(bp)
    app.config["HTTP_ERROR_SCHEMA"] = HTTP_ERROR_SCHEMA
    app.config["VALIDATION_ERROR_SCHEMA"] = VALIDATION_ERROR_SCHEMA

    @app.error_processor  # type: ignore[attr-defined]
    def api_error(error: HTTPError) -> tuple[dict[str, Any], int, Any]:
        code = (error.extra_data or {}).get("code") if isinstance(error.extra_data, dict) else None
        detail = error.detail if error.detail else None
        return (
            error_body(error.status_code, error.message or "", code, detail),
            error.status_code,
            error.headers,
        )

    app.register_blueprint(bp)
