"""Placeholder: routes on `web.api.bp` are added here."""
