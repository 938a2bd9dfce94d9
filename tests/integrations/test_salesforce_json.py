"""Salesforce's JSON bodies: msgspec decodes them to exactly what `json.loads` gave, or leaves them to it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from integrations.salesforce_client import SalesforceResponse, connect
from integrations.salesforce_settings import SalesforceSettings
from tests.integrations.fake_salesforce import FakeSalesforce, salesforce_config

# What simple-salesforce asks for, as `connect` configures it.
CLIENT_JSON = {"object_pairs_hook": None, "parse_float": Decimal}


def response(body: bytes, encoding: str | None = "UTF-8") -> SalesforceResponse:
    answer = SalesforceResponse()
    answer.status_code = 200
    answer._content = body
    answer.encoding = encoding
    return answer


def typed(value: Any) -> Any:
    """The value with every leaf tagged by its type: 1, True and Decimal('1') compare equal otherwise."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, str(value))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_a_body_decodes_to_the_same_values_and_types_as_the_json_module(value: Any) -> None:
    for body in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()):
        expected = json.loads(body.decode(), parse_float=Decimal)
        assert typed(response(body).json(**CLIENT_JSON)) == typed(expected)
        assert typed(response(body).json()) == typed(json.loads(body.decode()))


def test_money_keeps_every_digit_a_float_would_lose() -> None:
    body = b'{"Amount": 12345678901234567.89, "Rate": 1.50}'
    assert response(body).json(**CLIENT_JSON) == {
        "Amount": Decimal("12345678901234567.89"),
        "Rate": Decimal("1.50"),
    }


@pytest.mark.parametrize("body", [b'{"Subject": "\\ud800 lone"}', b'{"Amount": NaN}'])
def test_what_msgspec_refuses_but_json_accepts_is_decoded_by_json(body: bytes) -> None:
    decoded = response(body).json(**CLIENT_JSON)
    assert typed(decoded) == typed(json.loads(body.decode(), parse_float=Decimal))


def test_a_malformed_body_fails_as_requests_json_error() -> None:
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response(b'{"records": [').json(**CLIENT_JSON)


def test_a_body_in_another_charset_is_read_in_that_charset() -> None:
    # Valid UTF-8 bytes that mean something else in Latin-1: the declared charset wins, as before.
    assert response('{"Name": "é"}'.encode(), encoding="ISO-8859-1").json(**CLIENT_JSON) == {"Name": "Ã©"}


def test_other_decoding_options_go_to_requests() -> None:
    assert response(b'{"a": 1.5}').json(parse_float=str) == {"a": "1.5"}


def test_the_client_receives_such_responses_from_the_transport() -> None:
    with FakeSalesforce() as fake:
        fake.add("Account", Name="Acme", AnnualRevenue=Decimal("1250000.75"))
        connection = connect(SalesforceSettings.from_config(salesforce_config(fake)))
        page = connection.client.session.get(f"{connection.client.base_url}query/?q=SELECT+Id+FROM+Account")
        assert isinstance(page, SalesforceResponse)
        rows = connection.client.query("SELECT Id, AnnualRevenue FROM Account")["records"]
        assert rows[0]["AnnualRevenue"] == Decimal("1250000.75")
        assert isinstance(rows[0]["AnnualRevenue"], Decimal)
