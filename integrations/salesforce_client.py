"""Reach Salesforce: the HTTP transport (retries, loopback http, token refresh), the client, error types.

simple-salesforce has no retries of its own and always builds `https://` URLs, so everything about the
wire lives in the requests session we hand it: a transport adapter that retries 5xx and
`REQUEST_LIMIT_EXCEEDED` with bounded backoff, refreshes an expired OAuth token once, records the
`Sforce-Limit-Info` header, and speaks plain http to a loopback host (a local fake) and nowhere else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import msgspec
import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)

from integrations.base import SourceAuthError, SourceError, SourceRateLimited, SourceUnavailable
from integrations.salesforce_settings import (
    SalesforceConfigError,
    SalesforceSettings,
    check_url,
    is_loopback,
    netloc,
)

Sleep = Callable[[float], None]

RATE_LIMIT_CODE = "REQUEST_LIMIT_EXCEEDED"
EXPIRED_SESSION_CODE = "INVALID_SESSION_ID"
MAX_BACKOFF_SECONDS = 60.0


@dataclass
class RetryPolicy:
    max_retries: int = 4
    backoff_seconds: float = 1.0
    timeout_seconds: float = 120.0

    def delay(self, attempt: int, response: requests.Response | None = None) -> float:
        """Exponential backoff, or the server's Retry-After when it names one."""
        if response is not None:
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                return min(float(retry_after), MAX_BACKOFF_SECONDS)
        return min(self.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)


@dataclass
class TransportState:
    """What the transport shares with its callers: the token, API usage and a request count."""

    token: str = field(default="", repr=False)
    api_usage: str | None = None
    request_count: int = 0
    retries: int = 0
    refresher: Callable[[], str] | None = None
    sleep: Sleep = time.sleep
    on_usage: Callable[[str], None] | None = None

    def observe(self, response: requests.Response) -> None:
        self.request_count += 1
        usage = response.headers.get("Sforce-Limit-Info")
        if usage:
            self.api_usage = usage[:100]
            if self.on_usage is not None:
                self.on_usage(self.api_usage)

    def apply_token(self, request: requests.PreparedRequest) -> None:
        # Bulk handlers copy the headers when created; a refreshed token must reach them too.
        current = request.headers.get("Authorization", "")
        if isinstance(current, bytes):
            current = current.decode("latin-1")
        if self.token and current.startswith("Bearer ") and current != f"Bearer {self.token}":
            request.headers["Authorization"] = f"Bearer {self.token}"


def error_code(response: requests.Response) -> str | None:
    """Return the `errorCode` of a documented Salesforce error body `[{"message", "errorCode"}]`."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        code = body[0].get("errorCode")
        return str(code) if code is not None else None
    if isinstance(body, dict) and "errorCode" in body:
        return str(body["errorCode"])
    return None


def _retryable(response: requests.Response) -> bool:
    status = response.status_code
    if status == 500 and _is_soap_fault(response):
        # The SOAP API answers every fault with 500, a refused login() among them: trying the same
        # password again only brings the user closer to being locked out.
        return False
    if status >= 500 or status == 429:
        return True
    return status == 403 and error_code(response) == RATE_LIMIT_CODE


def _is_soap_fault(response: requests.Response) -> bool:
    return "xml" in response.headers.get("Content-Type", "") and b":Fault>" in response.content


class SalesforceResponse(requests.Response):
    """A response whose JSON body is decoded by msgspec: the same values as `json.loads`, in half the time.

    simple-salesforce decodes every query page with `response.json(object_pairs_hook=None,
    parse_float=Decimal)` (as `connect` configures it); on a big sync that decoding is one of the client's
    largest costs (a 2,000-row page: 2.2 ms with json, 1.2 ms with msgspec). msgspec builds the very same
    dicts, lists, ints, strings and Decimals from UTF-8 bytes. Whatever it refuses (a lone surrogate
    escape, a NaN) or any other call goes to requests' own `json`, which answers or fails as before.
    """

    def json(self, **kwargs: Any) -> Any:
        decoder = _DECODERS.get(kwargs.get("parse_float"))
        if (
            decoder is not None
            and kwargs.keys() <= {"object_pairs_hook", "parse_float"}
            and kwargs.get("object_pairs_hook") is None
            and (self.encoding or "utf-8").lower().replace("-", "") == "utf8"
        ):
            try:
                return decoder.decode(self.content)
            except msgspec.DecodeError:
                pass
        return super().json(**kwargs)


_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {
    None: msgspec.json.Decoder(),
    Decimal: msgspec.json.Decoder(float_hook=Decimal),
}


class SalesforceTransport(HTTPAdapter):
    """Send requests with bounded retries, one token refresh, usage tracking, and loopback http."""

    def __init__(self, policy: RetryPolicy, state: TransportState, *, origin: str | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.state = state
        # Where requests really go (`http://127.0.0.1:8000`), whatever scheme and host they were written
        # with: simple-salesforce always writes https, and signs in at https://<domain>.salesforce.com.
        self.origin = origin

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = super().build_response(req, resp)
        response.__class__ = SalesforceResponse  # a subclass with no state of its own: only `json` differs
        return response

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        if self.origin is not None and request.url:
            parts = urlsplit(request.url)
            request.url = self.origin + request.url[len(f"{parts.scheme}://{parts.netloc}") :]
        timeout = timeout if timeout is not None else self.policy.timeout_seconds
        self.state.apply_token(request)
        attempt = 0
        refreshed = False
        while True:
            try:
                response = super().send(
                    request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
                )
            except (requests.ConnectionError, requests.Timeout):
                if attempt >= self.policy.max_retries:
                    raise
                attempt += 1
                self.state.retries += 1
                self.state.sleep(self.policy.delay(attempt))
                continue
            self.state.observe(response)
            if (
                response.status_code == 401
                and not refreshed
                and self.state.refresher is not None
                and error_code(response) == EXPIRED_SESSION_CODE
            ):
                refreshed = True
                response.close()
                self.state.refresher()
                self.state.apply_token(request)
                continue
            if attempt < self.policy.max_retries and _retryable(response):
                attempt += 1
                self.state.retries += 1
                delay = self.policy.delay(attempt, response)
                response.close()
                self.state.sleep(delay)
                continue
            return response


class _RefusePlainHttp(HTTPAdapter):
    """Refuse plain http to anything but the loopback host mounted above it."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        host = urlsplit(request.url or "").hostname or "?"
        raise SalesforceConfigError(f"refusing plain http:// to {host}: use https://")


@dataclass
class SalesforceConnection:
    """A signed-in simple-salesforce client and the transport state behind it."""

    client: Salesforce
    state: TransportState
    settings: SalesforceSettings
    instance_url: str


def _policy(settings: SalesforceSettings) -> RetryPolicy:
    return RetryPolicy(settings.max_retries, settings.backoff_seconds, settings.timeout_seconds)


def _session(settings: SalesforceSettings, state: TransportState, instance_url: str) -> requests.Session:
    policy = _policy(settings)
    session = requests.Session()
    session.mount("https://", SalesforceTransport(policy, state))
    session.mount("http://", _RefusePlainHttp())
    for url in (instance_url, settings.token_url, settings.login_url):
        parts = urlsplit(url)
        if parts.scheme == "http" and is_loopback(parts.hostname or ""):
            _mount_loopback(session, policy, state, netloc(parts.hostname or "", parts.port))
    login = urlsplit(settings.login_url)
    login_origin = f"{login.scheme}://{netloc(login.hostname or '', login.port)}"
    if settings.auth_mode == "password" and login_origin != settings.domain_url:
        # The sign-in goes where SALESFORCE_LOGIN_URL says (checked like every URL: https, or http to
        # this machine), not to the https://<domain>.salesforce.com simple-salesforce writes.
        session.mount(settings.domain_url + "/", SalesforceTransport(policy, state, origin=login_origin))
    return session


def _mount_loopback(
    session: requests.Session, policy: RetryPolicy, state: TransportState, location: str
) -> None:
    """Send the requests written for `location` (https or http) as plain http to it: a local stand-in."""
    loopback = SalesforceTransport(policy, state, origin=f"http://{location}")
    session.mount(f"https://{location}/", loopback)
    session.mount(f"http://{location}/", loopback)


class _Refresher:
    """Trade the refresh token for a new access token at the OAuth token endpoint."""

    def __init__(self, settings: SalesforceSettings, state: TransportState) -> None:
        self.settings = settings
        self.state = state
        self.refresh_token = settings.refresh_token
        self.session: requests.Session | None = None
        self.instance_url = ""
        self.on_token: Callable[[str], None] | None = None

    def __call__(self) -> str:
        assert self.session is not None
        form = {
            "grant_type": "refresh_token",
            "client_id": self.settings.client_id,
            "refresh_token": self.refresh_token,
        }
        if self.settings.client_secret:
            form["client_secret"] = self.settings.client_secret
        try:
            response = self.session.post(
                self.settings.token_url, data=form, headers={"Accept": "application/json"}
            )
        except requests.RequestException as error:
            raise SourceUnavailable(
                f"Salesforce token endpoint unreachable: {type(error).__name__}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            reason = body.get("error", f"HTTP {response.status_code}") if isinstance(body, dict) else ""
            detail = body.get("error_description", "") if isinstance(body, dict) else ""
            raise SourceAuthError(f"Salesforce refused the refresh token: {reason} {detail}".strip())
        self.state.token = str(body["access_token"])
        # With refresh token rotation on, each refresh hands out the next refresh token.
        if body.get("refresh_token"):
            self.refresh_token = str(body["refresh_token"])
        self.instance_url = str(body.get("instance_url") or "")
        if self.on_token is not None:
            self.on_token(self.state.token)
        return self.state.token


def connect(
    settings: SalesforceSettings, *, sleep: Sleep = time.sleep, on_usage: Callable[[str], None] | None = None
) -> SalesforceConnection:
    """Sign in with the configured credentials and return a ready client."""
    state = TransportState(token=settings.access_token, sleep=sleep, on_usage=on_usage)
    session = _session(settings, state, settings.instance_url)
    refresher: _Refresher | None = None
    if settings.can_refresh:
        refresher = _Refresher(settings, state)
        refresher.session = session
        state.refresher = refresher
    options: dict[str, Any] = {
        "version": settings.api_version,
        "session": session,
        "parse_float": Decimal,
        # None keeps json's C fast path; simple-salesforce's default builds an OrderedDict per record.
        "object_pairs_hook": None,
    }
    with translate_errors("signing in to Salesforce"):
        if settings.auth_mode == "password":
            client = Salesforce(
                username=settings.username,
                password=settings.password,
                security_token=settings.security_token,
                domain=settings.domain,
                **options,
            )
            instance_url = _signed_in_instance(settings, session, state, client.sf_instance)
            state.token = client.session_id
        else:
            instance_url = settings.instance_url
            if not state.token:
                assert refresher is not None
                refresher()
                if not instance_url:
                    instance_url = refresher.instance_url.rstrip("/")
                    check_url("the instance_url from the token endpoint", instance_url)
                    session = _session(settings, state, instance_url)
                    options["session"] = session
                    refresher.session = session
            parts = urlsplit(instance_url)
            client = Salesforce(
                instance=netloc(parts.hostname or "", parts.port), session_id=state.token, **options
            )
    if refresher is not None:

        def adopt(token: str) -> None:
            client.session_id = token
            client.headers["Authorization"] = f"Bearer {token}"

        refresher.on_token = adopt
    return SalesforceConnection(client=client, state=state, settings=settings, instance_url=instance_url)


def _signed_in_instance(
    settings: SalesforceSettings, session: requests.Session, state: TransportState, instance: str
) -> str:
    """Return the instance URL a username-password sign-in named (host[:port] from its serverUrl).

    A stand-in signing in over http on this machine hands out an instance on this machine: that one is
    reached over plain http too. Any other instance is https.
    """
    login = urlsplit(settings.login_url)
    host = urlsplit(f"//{instance}").hostname or ""
    if login.scheme == "http" and is_loopback(login.hostname or "") and is_loopback(host):
        _mount_loopback(session, _policy(settings), state, instance)
        return f"http://{instance}"
    return f"https://{instance}"


def _describe(error: SalesforceError) -> str:
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return f"{first.get('errorCode', '')}: {first.get('message', '')}".strip(": ")
    if isinstance(content, dict):
        return json.dumps(content)[:300]
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
    return f"HTTP {error.status}: {text[:300]}"


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Turn simple-salesforce and requests failures into the `SourceError` types the engine knows."""
    try:
        yield
    except SourceError:
        raise
    except SalesforceAuthenticationFailed as error:
        raise SourceAuthError(
            f"{action}: Salesforce refused the sign-in ({error.code}: {error.auth_message})"
        ) from None
    except SalesforceExpiredSession as error:
        raise SourceAuthError(f"{action}: Salesforce refused the session ({_describe(error)})") from None
    except SalesforceRefusedRequest as error:
        if error_code_of(error) == RATE_LIMIT_CODE:
            raise SourceRateLimited(
                f"{action}: Salesforce API limit reached and retries did not help ({_describe(error)})"
            ) from None
        raise SourceAuthError(f"{action}: Salesforce refused the request ({_describe(error)})") from None
    except SalesforceError as error:
        if isinstance(error.status, int) and error.status >= 500:
            raise SourceUnavailable(f"{action}: Salesforce kept failing ({_describe(error)})") from None
        raise SourceError(f"{action}: Salesforce answered {_describe(error)}") from None
    except SalesforceOperationError as error:
        raise SourceUnavailable(f"{action}: a Salesforce bulk job failed ({str(error)[:300]})") from None
    except requests.RequestException as error:
        raise SourceUnavailable(f"{action}: Salesforce unreachable ({type(error).__name__})") from None


def error_code_of(error: SalesforceError) -> str | None:
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        code = content[0].get("errorCode")
        return str(code) if code is not None else None
    return None
