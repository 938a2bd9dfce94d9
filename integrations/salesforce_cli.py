"""Placeholder: filled in by the web foundation."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register this module with the app."""
