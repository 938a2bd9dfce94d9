"""The registry of sources: callers name a source (`demo`, `file`, `salesforce`, `hubspot`), never a class."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

from integrations.base import Source

# "module:factory"; each factory takes the app config and the caller's options and returns a Source.
SOURCES: dict[str, str] = {
    "demo": "integrations.demo:DemoSource.from_config",
    "file": "integrations.files:FileSource.from_config",
    "salesforce": "integrations.salesforce:SalesforceSource.from_config",
    "hubspot": "integrations.hubspot:HubSpotSource.from_config",
}


class UnknownSource(ValueError):
    """The named source does not exist or is not available in this build."""


def get_source(name: str, config: Mapping[str, Any], **options: Any) -> Source:
    """Build the source called `name` from the app config."""
    reference = SOURCES.get(name)
    if reference is None:
        raise UnknownSource(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise UnknownSource(f"the {name} source is not available in this version") from error
    for part in attribute.split("."):
        target = getattr(target, part)
    factory: Callable[..., Source] = target
    return factory(config, **options)
