"""Response headers every page carries: framing rules, content sniffing, referrer."""

from __future__ import annotations

from flask import Flask, Response, request


def frame_ancestors(app: Flask) -> str:
    """Return the CSP `frame-ancestors` list for embeddable routes."""
    origins = app.config.get("EMBED_FRAME_ANCESTORS") or []
    return " ".join(origins) if origins else "'none'"


def init_app(app: Flask) -> None:
    """Set the security headers; only /embed/ routes may be framed, and only by the CRM origins."""

    @app.after_request
    def security_headers(response: Response) -> Response:
        if request.path.startswith("/embed/"):
            response.headers["Content-Security-Policy"] = f"frame-ancestors {frame_ancestors(app)}"
        else:
            response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
            response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
