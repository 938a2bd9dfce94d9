"""Error pages for people and JSON errors for the API; never a traceback to the user."""

from __future__ import annotations

from flask import Flask, Response, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from web.api import error_body

# What a person reads for each status; the API sends its own message instead.
PAGE_TEXT = {
    400: ("Bad request", "The request could not be understood. Check what you entered and try again."),
    401: ("Sign in needed", "Sign in to see this page."),
    403: ("Not yours to see", "This page belongs to someone outside your accounts and team."),
    404: ("Not found", "There is nothing at this address. It may have been removed, or the link is wrong."),
    405: ("Not allowed", "This address does not accept that kind of request."),
    409: ("Conflict", "Someone changed this while you were working on it. Reload and try again."),
    413: ("Too large", "What you sent is larger than StratLink accepts."),
    429: ("Too many requests", "Slow down a little and try again in a minute."),
    500: ("Something went wrong", "Something went wrong on our side. It has been logged; try again shortly."),
}
OWN_WORDS_TITLES = {403: "Not allowed"}
CSRF_TEXT = "Your form expired or came from another site. Reload the page and submit it again."


def wants_json() -> bool:
    """Tell whether the request is an API call, which gets JSON errors."""
    return request.path == "/api" or request.path.startswith("/api/")


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    """Answer an HTTP error with JSON under /api and with a page everywhere else."""
    if error.code is None or error.code < 400:
        return error
    code = error.code
    headers = {key: value for key, value in error.get_headers() if key.lower() != "content-type"}
    title, message = PAGE_TEXT.get(code, (error.name, error.description or ""))
    if isinstance(error, CSRFError):
        message = CSRF_TEXT
    elif error.description and error.description != type(error).description:
        # Written for people where the page aborts (abort(403, "Only admins…")): the generic words,
        # "outside your accounts", would be wrong for someone who may see the page but not do this.
        title, message = OWN_WORDS_TITLES.get(code, title), error.description
    if wants_json():
        api_code = "csrf_failed" if isinstance(error, CSRFError) else None
        # Werkzeug's own descriptions are written for API callers too; keep them for the JSON body.
        json_message = message if isinstance(error, CSRFError) else (error.description or error.name)
        return error_body(code, json_message, api_code), code, headers
    return render_template("errors/error.html", code=code, title=title, message=message), code, headers


def handle_server_error(error: InternalServerError) -> ResponseReturnValue:
    """Answer an unexpected failure without revealing anything about it (Flask has logged it)."""
    title, message = PAGE_TEXT[500]
    if wants_json():
        return error_body(500, message), 500
    # A standalone page: the failure may be in the database the full layout reads from.
    try:
        return render_template("errors/500.html", title=title, message=message), 500
    except Exception:  # the last line of defence must not fail in turn
        return Response(f"{title}. {message}", status=500, mimetype="text/plain")


def init_app(app: Flask) -> None:
    """Register the error handlers."""
    app.register_error_handler(InternalServerError, handle_server_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(CSRFError, handle_http_error)
