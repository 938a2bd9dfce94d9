"""The Salesforce settings: read from the app config (or the environment), checked before any request.

Plain `http://` is accepted for a loopback host only, so a local fake can stand in for an org; every
other host needs https. Secrets never appear in a settings object's repr.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from integrations.base import SourceError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class SalesforceConfigError(SourceError):
    """The Salesforce settings are incomplete or unsafe (e.g. plain http to a remote host)."""


def setting(config: Mapping[str, Any], name: str, default: str = "") -> str:
    """Read a setting from the app config, then the environment (for names config.py does not define)."""
    value = config.get(name)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        value = os.environ.get(name, "")
    text = str(value).strip() if value is not None else ""
    return text or default


def _number(config: Mapping[str, Any], name: str, default: float) -> float:
    raw = setting(config, name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as error:
        raise SalesforceConfigError(f"{name} must be a number, got {raw!r}") from error


def _flag(config: Mapping[str, Any], name: str) -> bool:
    value = config.get(name)
    if isinstance(value, bool):
        return value
    return setting(config, name).lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SalesforceSettings:
    """Everything needed to reach one org; built from the app config by `from_config`."""

    instance_url: str = ""
    access_token: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    security_token: str = field(default="", repr=False)
    domain: str = "login"
    login_url: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    token_url: str = ""
    api_version: str = "62.0"
    account_record_types: tuple[str, ...] = ()
    bulk_threshold: int = 100_000
    bulk_poll_seconds: float = 2.0
    max_retries: int = 4
    backoff_seconds: float = 1.0
    timeout_seconds: float = 120.0
    batch_size: int = 2000
    writeback: bool = False
    writeback_status_field: str = "StratLink_Strategy_Status__c"
    writeback_objective_field: str = "StratLink_Objective__c"
    writeback_uncovered_field: str = "StratLink_Uncovered_Activities__c"
    writeback_objective_length: int = 255

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, check: bool = True) -> SalesforceSettings:
        """Read the SALESFORCE_* settings and (unless `check` is off) refuse unsafe or incomplete ones."""
        instance_url = setting(config, "SALESFORCE_INSTANCE_URL").rstrip("/")
        domain = setting(config, "SALESFORCE_DOMAIN", "login")
        login_url = setting(config, "SALESFORCE_LOGIN_URL").rstrip("/") or _domain_origin(domain)
        token_url = setting(config, "SALESFORCE_TOKEN_URL")
        if not token_url:
            token_url = (instance_url or login_url) + "/services/oauth2/token"
        record_types = tuple(
            item.strip()
            for item in setting(config, "SALESFORCE_ACCOUNT_RECORD_TYPES").split(",")
            if item.strip()
        )
        settings = cls(
            instance_url=instance_url,
            access_token=setting(config, "SALESFORCE_ACCESS_TOKEN"),
            username=setting(config, "SALESFORCE_USERNAME"),
            password=setting(config, "SALESFORCE_PASSWORD"),
            security_token=setting(config, "SALESFORCE_SECURITY_TOKEN"),
            domain=domain,
            login_url=login_url,
            client_id=setting(config, "SALESFORCE_CLIENT_ID"),
            client_secret=setting(config, "SALESFORCE_CLIENT_SECRET"),
            refresh_token=setting(config, "SALESFORCE_REFRESH_TOKEN"),
            token_url=token_url,
            api_version=setting(config, "SALESFORCE_API_VERSION", "62.0").lstrip("vV"),
            account_record_types=record_types,
            bulk_threshold=int(_number(config, "SALESFORCE_BULK_THRESHOLD", 100_000)),
            bulk_poll_seconds=_number(config, "SALESFORCE_BULK_POLL_SECONDS", 2.0),
            max_retries=int(_number(config, "SALESFORCE_MAX_RETRIES", 4)),
            backoff_seconds=_number(config, "SALESFORCE_RETRY_BACKOFF_SECONDS", 1.0),
            timeout_seconds=_number(config, "SALESFORCE_TIMEOUT_SECONDS", 120.0),
            batch_size=max(1, int(_number(config, "SYNC_BATCH_SIZE", 2000))),
            writeback=_flag(config, "SALESFORCE_WRITEBACK"),
            writeback_status_field=setting(
                config, "SALESFORCE_WRITEBACK_STATUS_FIELD", "StratLink_Strategy_Status__c"
            ),
            writeback_objective_field=setting(
                config, "SALESFORCE_WRITEBACK_OBJECTIVE_FIELD", "StratLink_Objective__c"
            ),
            writeback_uncovered_field=setting(
                config, "SALESFORCE_WRITEBACK_UNCOVERED_FIELD", "StratLink_Uncovered_Activities__c"
            ),
            writeback_objective_length=int(_number(config, "SALESFORCE_WRITEBACK_OBJECTIVE_LENGTH", 255)),
        )
        if check:
            settings.validate()
        return settings

    @property
    def auth_mode(self) -> str:
        """Name the way we sign in: access_token, refresh_token or password."""
        if self.access_token and self.instance_url:
            return "access_token"
        if self.client_id and self.refresh_token:
            return "refresh_token"
        if self.username and self.password:
            return "password"
        return "none"

    @property
    def can_refresh(self) -> bool:
        return bool(self.client_id and self.refresh_token)

    def validate(self) -> None:
        """Raise `SalesforceConfigError` for settings we must not or cannot use."""
        if self.auth_mode == "none":
            raise SalesforceConfigError(
                "Salesforce is not configured: set SALESFORCE_INSTANCE_URL and SALESFORCE_ACCESS_TOKEN, "
                "or SALESFORCE_CLIENT_ID and SALESFORCE_REFRESH_TOKEN, "
                "or SALESFORCE_USERNAME, SALESFORCE_PASSWORD and SALESFORCE_SECURITY_TOKEN"
            )
        for name, url in (
            ("SALESFORCE_INSTANCE_URL", self.instance_url),
            ("SALESFORCE_LOGIN_URL", self.login_url),
            ("SALESFORCE_TOKEN_URL", self.token_url),
        ):
            if url:
                check_url(name, url)
        if self.max_retries < 0 or self.backoff_seconds < 0 or self.timeout_seconds <= 0:
            raise SalesforceConfigError("Salesforce retry and timeout settings must be positive")

    @property
    def domain_url(self) -> str:
        """Where simple-salesforce sends a username-password sign-in: it builds this from the domain."""
        return _domain_origin(self.domain)

    def public_instance_url(self) -> str:
        """The instance URL without credentials, query or fragment: safe to show."""
        if not self.instance_url:
            return ""
        parts = urlsplit(self.instance_url)
        return f"{parts.scheme}://{netloc(parts.hostname or '', parts.port)}"


def _domain_origin(domain: str) -> str:
    return f"https://{domain}.salesforce.com"


def is_loopback(host: str) -> bool:
    """Tell whether `host` names this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def netloc(host: str, port: int | None) -> str:
    """Format host and port for a URL, bracketing IPv6 addresses."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port in (None, 443) else f"{shown}:{port}"


def check_url(name: str, url: str) -> None:
    """Accept https anywhere and plain http only to a loopback host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise SalesforceConfigError(f"{name} must be an https:// URL, got {parts.scheme or 'no'} scheme")
    if parts.username or parts.password:
        raise SalesforceConfigError(f"{name} must not carry credentials")
    if parts.scheme == "http" and not is_loopback(host):
        raise SalesforceConfigError(
            f"{name} uses plain http:// for {host}: only a loopback host (127.0.0.1, ::1, localhost) "
            "may be reached without TLS; use https://"
        )
