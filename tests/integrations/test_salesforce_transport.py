"""Reaching Salesforce: loopback-only http, token refresh, retries with backoff, and failures as types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from integrations.base import SourceAuthError, SourceError, SourceRateLimited, SourceUnavailable
from integrations.salesforce import SalesforceSource
from integrations.salesforce_client import connect
from integrations.salesforce_settings import SalesforceConfigError, SalesforceSettings
from tests.integrations.fake_salesforce import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    RATE_LIMITED,
    REFRESH_TOKEN,
    SECURITY_TOKEN,
    UNAVAILABLE,
    USERNAME,
    FakeSalesforce,
    salesforce_config,
    seed_org,
)


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    with FakeSalesforce(page_size=3) as server:
        yield server


class Sleeps(list[float]):
    """Records the backoff a source asked for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def read_accounts(fake: FakeSalesforce, sleep: Sleeps | None = None, **config: Any) -> list[str]:
    source = SalesforceSource.from_config(
        salesforce_config(fake, **config), sleep=sleep if sleep is not None else Sleeps()
    )
    return [
        record.external_id for batch in source.read("accounts", None, full=False) for record in batch.records
    ]


def oauth(fake: FakeSalesforce) -> dict[str, Any]:
    return {
        "SALESFORCE_CLIENT_ID": CLIENT_ID,
        "SALESFORCE_CLIENT_SECRET": CLIENT_SECRET,
        "SALESFORCE_REFRESH_TOKEN": REFRESH_TOKEN,
    }


@pytest.mark.parametrize(
    "url",
    ["http://na1.salesforce.com", "http://10.0.0.5:8080", "http://127.0.0.1.example.com:8080"],
)
def test_plain_http_is_refused_for_a_host_that_is_not_loopback(url: str) -> None:
    with pytest.raises(SalesforceConfigError, match="only a loopback host"):
        SalesforceSource.from_config({"SALESFORCE_INSTANCE_URL": url, "SALESFORCE_ACCESS_TOKEN": "token"})


def test_plain_http_to_the_token_endpoint_of_a_remote_host_is_refused() -> None:
    with pytest.raises(SalesforceConfigError, match="SALESFORCE_TOKEN_URL"):
        SalesforceSettings.from_config(
            {
                "SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com",
                "SALESFORCE_TOKEN_URL": "http://login.example.com/services/oauth2/token",
                "SALESFORCE_CLIENT_ID": "id",
                "SALESFORCE_REFRESH_TOKEN": "refresh",
            }
        )


def test_missing_credentials_are_a_clear_configuration_error() -> None:
    with pytest.raises(SalesforceConfigError, match="SALESFORCE_ACCESS_TOKEN"):
        SalesforceSettings.from_config({"SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com"})


def test_the_loopback_session_still_refuses_plain_http_to_any_other_host(fake: FakeSalesforce) -> None:
    connection = connect(SalesforceSettings.from_config(salesforce_config(fake)))

    with pytest.raises(SalesforceConfigError, match="refusing plain http:// to example.com"):
        connection.client.session.get("http://example.com/services/data/")


def test_the_shown_instance_url_carries_no_secret(fake: FakeSalesforce) -> None:
    settings = SalesforceSettings.from_config(salesforce_config(fake, SALESFORCE_INSTANCE_URL=fake.url + "/"))

    assert settings.public_instance_url() == fake.url
    assert "test-access-token" not in repr(settings)


def test_an_expired_session_is_refreshed_once_with_the_refresh_token_and_the_request_retried(
    fake: FakeSalesforce,
) -> None:
    org = seed_org(fake, accounts=2)
    fake.expire_tokens()

    assert read_accounts(fake, **oauth(fake)) == org.accounts

    token_requests = [request for request in fake.requests if request.path == "/services/oauth2/token"]
    assert len(token_requests) == 1
    form = {key: values[0] for key, values in parse_qs(token_requests[0].body.decode()).items()}
    assert form == {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
    }
    after = fake.requests[fake.requests.index(token_requests[0]) + 1 :]
    assert after and all(request.headers["authorization"] != "Bearer test-access-token" for request in after)


def test_an_expired_session_without_a_refresh_token_fails_as_an_auth_error(fake: FakeSalesforce) -> None:
    seed_org(fake, accounts=1)
    fake.expire_tokens()

    with pytest.raises(SourceAuthError, match="INVALID_SESSION_ID"):
        read_accounts(fake)


def test_a_refused_refresh_token_fails_as_an_auth_error_without_echoing_it(fake: FakeSalesforce) -> None:
    seed_org(fake, accounts=1)
    fake.expire_tokens()
    fake.refresh_tokens.clear()

    with pytest.raises(SourceAuthError, match="invalid_grant") as caught:
        read_accounts(fake, **oauth(fake))
    assert REFRESH_TOKEN not in str(caught.value)


def test_a_session_that_stays_expired_after_the_refresh_is_not_refreshed_again(fake: FakeSalesforce) -> None:
    seed_org(fake, accounts=1)
    fake.expire_tokens()
    fake.fail(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], times=5,
              match=lambda request: request.path.startswith("/services/data"))  # fmt: skip

    with pytest.raises(SourceAuthError):
        read_accounts(fake, **oauth(fake))
    assert sum(request.path == "/services/oauth2/token" for request in fake.requests) == 1


def test_a_refresh_token_alone_signs_in_and_learns_the_instance_url(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1)
    config = {
        **oauth(fake),
        "SALESFORCE_TOKEN_URL": fake.url + "/services/oauth2/token",
        "SALESFORCE_BULK_THRESHOLD": 0,
    }
    source = SalesforceSource.from_config(config)

    accounts = [record for batch in source.read("accounts", None, full=False) for record in batch.records]

    assert [account.external_id for account in accounts] == org.accounts
    assert accounts[0].url == f"{fake.url}/{org.accounts[0]}"
    assert fake.requests[0].path == "/services/oauth2/token"


def test_rate_limits_are_retried_with_growing_backoff_then_succeed(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=2)
    fake.fail(403, RATE_LIMITED, times=2, match=lambda request: request.soql is not None)
    sleeps = Sleeps()

    assert read_accounts(fake, sleeps) == org.accounts
    assert sleeps == [1.0, 2.0]


def test_a_retry_after_header_sets_the_wait(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1)
    fake.fail(503, UNAVAILABLE, headers={"Retry-After": "7"}, match=lambda request: request.soql is not None)
    sleeps = Sleeps()

    assert read_accounts(fake, sleeps) == org.accounts
    assert sleeps == [7.0]


def test_rate_limits_that_persist_end_as_source_rate_limited_after_bounded_retries(
    fake: FakeSalesforce,
) -> None:
    seed_org(fake, accounts=1)
    fake.fail(403, RATE_LIMITED, times=100, match=lambda request: request.soql is not None)
    sleeps = Sleeps()

    with pytest.raises(SourceRateLimited, match="REQUEST_LIMIT_EXCEEDED"):
        read_accounts(fake, sleeps, SALESFORCE_MAX_RETRIES=3)
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(fake.requests) == 4


def test_server_errors_that_persist_end_as_source_unavailable(fake: FakeSalesforce) -> None:
    seed_org(fake, accounts=4)
    # The second page fails: retries happen on that page, not by starting the query again.
    fake.fail(500, [{"message": "boom", "errorCode": "UNKNOWN_EXCEPTION"}], times=100,
              match=lambda request: "/query/01g" in request.path)  # fmt: skip
    sleeps = Sleeps()

    with pytest.raises(SourceUnavailable, match="UNKNOWN_EXCEPTION"):
        read_accounts(fake, sleeps, SALESFORCE_MAX_RETRIES=2)
    assert len(sleeps) == 2
    assert sum(request.soql is not None for request in fake.requests) == 1


def test_a_refused_request_other_than_the_rate_limit_is_an_auth_error_and_not_retried(
    fake: FakeSalesforce,
) -> None:
    seed_org(fake, accounts=1)
    fake.fail(403, [{"message": "no access", "errorCode": "INSUFFICIENT_ACCESS"}], times=10)
    sleeps = Sleeps()

    with pytest.raises(SourceAuthError, match="INSUFFICIENT_ACCESS"):
        read_accounts(fake, sleeps)
    assert sleeps == []


def test_a_malformed_query_is_a_source_error_naming_the_salesforce_error(fake: FakeSalesforce) -> None:
    seed_org(fake, accounts=1)
    fake.fail(
        400, [{"message": "No such column 'Industry' on entity 'Account'", "errorCode": "INVALID_FIELD"}]
    )

    with pytest.raises(SourceError, match="INVALID_FIELD: No such column 'Industry'"):
        read_accounts(fake)


def test_an_unreachable_org_is_unavailable_after_the_retries() -> None:
    with FakeSalesforce() as gone:
        config = salesforce_config(gone)
    sleeps = Sleeps()
    source = SalesforceSource.from_config({**config, "SALESFORCE_MAX_RETRIES": 2}, sleep=sleeps)

    with pytest.raises(SourceUnavailable, match="unreachable"):
        list(source.read("accounts", None, full=False))
    assert sleeps == [1.0, 2.0]


def password_login(fake: FakeSalesforce, **extra: Any) -> dict[str, Any]:
    return {
        "SALESFORCE_USERNAME": USERNAME,
        "SALESFORCE_PASSWORD": PASSWORD,
        "SALESFORCE_SECURITY_TOKEN": SECURITY_TOKEN,
        "SALESFORCE_LOGIN_URL": fake.url,
        "SALESFORCE_API_VERSION": "62.0",
        "SALESFORCE_BULK_THRESHOLD": 0,
        **extra,
    }


def test_username_password_and_security_token_sign_in_through_soap_login(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=2)
    source = SalesforceSource.from_config(password_login(fake), sleep=Sleeps())

    accounts = [record for batch in source.read("accounts", None, full=False) for record in batch.records]

    assert [account.external_id for account in accounts] == org.accounts
    login, *queries = fake.requests
    assert (login.method, login.path) == ("POST", "/services/Soap/u/62.0")
    # The password goes with the token appended, XML-escaped (the fake parses the envelope).
    assert b"correct horse &lt;&amp;&gt; battery" + SECURITY_TOKEN.encode() in login.body
    session = queries[0].headers["authorization"].removeprefix("Bearer ")
    assert session.startswith("00D") and session in fake.tokens
    assert all(query.headers["authorization"] == f"Bearer {session}" for query in queries)
    # The instance comes from the serverUrl login() answered with.
    assert accounts[0].url == f"{fake.url}/{org.accounts[0]}"


def test_a_refused_login_is_an_auth_error_with_salesforces_code_and_no_password(fake: FakeSalesforce) -> None:
    sleeps = Sleeps()
    config = password_login(fake, SALESFORCE_SECURITY_TOKEN="stale-token")
    source = SalesforceSource.from_config(config, sleep=sleeps)

    with pytest.raises(SourceAuthError, match="INVALID_LOGIN") as raised:
        list(source.read("accounts", None, full=False))
    assert PASSWORD not in str(raised.value) and "stale-token" not in str(raised.value)
    # Salesforce sends every SOAP fault as a 500; a refused login is not tried again (lockout).
    assert [request.path for request in fake.requests] == ["/services/Soap/u/62.0"]
    assert sleeps == []


def test_the_login_url_defaults_to_the_domain_and_refuses_plain_http_to_a_remote_host() -> None:
    credentials = {"SALESFORCE_USERNAME": "u", "SALESFORCE_PASSWORD": "p", "SALESFORCE_SECURITY_TOKEN": "t"}
    sandbox = SalesforceSettings.from_config({**credentials, "SALESFORCE_DOMAIN": "test"})
    assert sandbox.login_url == sandbox.domain_url == "https://test.salesforce.com"

    with pytest.raises(SalesforceConfigError, match="SALESFORCE_LOGIN_URL"):
        SalesforceSettings.from_config({**credentials, "SALESFORCE_LOGIN_URL": "http://login.example.com"})


def test_a_login_that_meets_a_passing_outage_is_tried_again(fake: FakeSalesforce) -> None:
    org = seed_org(fake, accounts=1)
    fake.fail(503, UNAVAILABLE, match=lambda request: request.path.startswith("/services/Soap/"))
    sleeps = Sleeps()
    source = SalesforceSource.from_config(password_login(fake), sleep=sleeps)

    accounts = [record for batch in source.read("accounts", None, full=False) for record in batch.records]

    assert [account.external_id for account in accounts] == org.accounts
    assert [request.path for request in fake.requests[:2]] == ["/services/Soap/u/62.0"] * 2
    assert sleeps == [1.0]
