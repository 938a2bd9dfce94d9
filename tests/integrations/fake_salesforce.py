"""A local fake of Salesforce's REST API, answering in the documented wire format.

A real threaded HTTP server holding sObjects in a store. It answers what StratLink's adapter uses:
`/services/data/vXX.X/query?q=` and `/queryAll?q=` (SOQL parsed well enough for WHERE with AND/OR/NOT,
comparisons, IN, `!= null`, ORDER BY and LIMIT), `query/<locator>` paging through `nextRecordsUrl`,
`PATCH composite/sobjects`, Bulk API 2.0 query jobs with CSV results and `Sforce-Locator`, the OAuth
token endpoint, and the SOAP API's `login()` (`loginResponse`, or a `LoginFault` with HTTP 500). Errors
are the documented bodies `[{"message": ..., "errorCode": ...}]`; every answer carries
`Sforce-Limit-Info`. Every request is recorded, and faults can be injected by request number or by a
predicate, so tests can assert the SOQL text and replay failures.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape as xml_escape

# The standard fields the fake knows per object (custom fields can be added); anything else in a query
# is an INVALID_FIELD error, as on a real org, which keeps the adapter's field lists honest.
SCHEMA: dict[str, set[str]] = {
    "User": {
        "Id", "Name", "FirstName", "LastName", "Email", "Username", "ManagerId", "IsActive", "UserType",
        "CreatedDate", "LastModifiedDate", "SystemModstamp",
    },
    "RecordType": {"Id", "Name", "DeveloperName", "SobjectType", "IsActive", "SystemModstamp"},
    "Account": {
        "Id", "Name", "OwnerId", "Industry", "AnnualRevenue", "Type", "RecordTypeId", "IsDeleted",
        "CreatedDate", "LastModifiedDate", "SystemModstamp",
    },
    "Opportunity": {
        "Id", "AccountId", "Name", "OwnerId", "StageName", "Amount", "CloseDate", "IsClosed", "IsWon",
        "RecordTypeId", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp",
    },
    "Task": {
        "Id", "AccountId", "WhatId", "WhoId", "OwnerId", "Subject", "Status", "TaskSubtype", "CallType",
        "ActivityDate", "CompletedDateTime", "IsArchived", "IsDeleted", "CreatedDate", "LastModifiedDate",
        "SystemModstamp",
    },
    "Event": {
        "Id", "AccountId", "WhatId", "WhoId", "OwnerId", "Subject", "EventSubtype", "ActivityDateTime",
        "ActivityDate", "StartDateTime", "EndDateTime", "IsAllDayEvent", "IsArchived", "IsDeleted",
        "CreatedDate", "LastModifiedDate", "SystemModstamp",
    },
    "Contract": {
        "Id", "AccountId", "OwnerId", "ContractNumber", "Status", "StartDate", "EndDate", "ContractTerm",
        "ActivatedDate", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp",
    },
}  # fmt: skip
KEY_PREFIXES = {
    "User": "005",
    "RecordType": "012",
    "Account": "001",
    "Opportunity": "006",
    "Task": "00T",
    "Event": "00U",
    "Contract": "800",
}
# Relationship name -> the object its <name>Id field points at, when the two differ.
RELATIONSHIPS = {"Owner": "User", "Manager": "User", "CreatedBy": "User", "LastModifiedBy": "User"}


class SoqlError(Exception):
    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


# Values on the wire ----------------------------------------------------------------------------------


def wire_datetime(value: datetime) -> str:
    """Format a datetime the way the REST API does: `2026-10-20T14:00:00.000+0000`."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def csv_datetime(value: datetime) -> str:
    """Format a datetime the way Bulk API 2.0 CSV results do: `2026-10-20T14:00:00.000Z`."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return wire_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def csv_value(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, datetime):
        return csv_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# Stores ----------------------------------------------------------------------------------------------


class Store(Protocol):
    """Where the fake keeps sObjects; the benchmark plugs in a generated one."""

    def fields(self, sobject: str) -> set[str]: ...

    def scan(self, sobject: str, since: datetime | None) -> Iterator[dict[str, Any]]:
        """Rows in (SystemModstamp, Id) order, starting at the first with SystemModstamp >= since."""
        ...

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None: ...

    def update(self, sobject: str, record_id: str, values: dict[str, Any]) -> None: ...


class MemoryStore:
    """sObjects in dictionaries, with a clock that stamps every change."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(seconds=1)) -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        self.now = start or (now - timedelta(days=10))
        self.step = step
        self.frozen = False
        self.schema = {name: set(fields) for name, fields in SCHEMA.items()}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in SCHEMA}
        self._numbers = itertools.count(1)

    def tick(self) -> datetime:
        if not self.frozen:
            self.now += self.step
        return self.now

    def new_id(self, sobject: str) -> str:
        return f"{KEY_PREFIXES[sobject]}{next(self._numbers):012d}AAA"

    def add(self, sobject: str, **values: Any) -> str:
        stamp = values.pop("SystemModstamp", None) or self.tick()
        record_id = values.pop("Id", None) or self.new_id(sobject)
        row: dict[str, Any] = dict.fromkeys(self.schema[sobject])
        if "IsDeleted" in row:
            row["IsDeleted"] = False
        row.update(Id=record_id, CreatedDate=stamp, LastModifiedDate=stamp, SystemModstamp=stamp)
        unknown = set(values) - self.schema[sobject]
        if unknown:
            raise KeyError(f"{sobject} has no field {sorted(unknown)}")
        row.update(values)
        self.rows[sobject][record_id] = row
        return record_id

    def change(self, sobject: str, record_id: str, **values: Any) -> None:
        row = self.rows[sobject][record_id]
        unknown = set(values) - self.schema[sobject]
        if unknown:
            raise KeyError(f"{sobject} has no field {sorted(unknown)}")
        row.update(values)
        row["LastModifiedDate"] = row["SystemModstamp"] = self.tick()

    def delete(self, sobject: str, record_id: str) -> None:
        self.change(sobject, record_id, IsDeleted=True)

    def fields(self, sobject: str) -> set[str]:
        return self.schema.get(sobject, set())

    def scan(self, sobject: str, since: datetime | None) -> Iterator[dict[str, Any]]:
        rows = sorted(self.rows.get(sobject, {}).values(), key=lambda row: (row["SystemModstamp"], row["Id"]))
        return iter([row for row in rows if since is None or row["SystemModstamp"] >= since])

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        return self.rows.get(sobject, {}).get(record_id)

    def update(self, sobject: str, record_id: str, values: dict[str, Any]) -> None:
        self.change(sobject, record_id, **values)


# SOQL ------------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    out: list[str] = []
    characters = iter(body)
    for character in characters:
        if character != "\\":
            out.append(character)
            continue
        escaped = next(characters, "")
        if escaped not in _ESCAPES and escaped not in "%_":
            raise SoqlError(f"invalid escape sequence \\{escaped} in {literal}")
        out.append(_ESCAPES.get(escaped, "\\" + escaped))
    return "".join(out)


def tokenize(soql: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    soql = soql.rstrip()
    while position < len(soql):
        match = _TOKEN.match(soql, position)
        if match is None or match.end() == position:
            raise SoqlError(f"unexpected token at {soql[position : position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        text = match.group(kind or "")
        if kind == "string":
            tokens.append(("value", _unquote(text)))
        elif kind == "datetime":
            tokens.append(("value", datetime.fromisoformat(text.replace("Z", "+00:00"))))
        elif kind == "date":
            tokens.append(("value", date.fromisoformat(text)))
        elif kind == "number":
            tokens.append(("value", Decimal(text)))
        elif kind == "word" and text.lower() in ("true", "false", "null"):
            tokens.append(("value", {"true": True, "false": False, "null": None}[text.lower()]))
        elif kind == "word":
            tokens.append(("word", text))
        else:
            tokens.append((kind or "", text))
    return tokens


@dataclass
class Query:
    sobject: str
    fields: list[str] | None  # None: SELECT COUNT()
    where: Any = None
    order: list[tuple[str, bool]] = field(default_factory=list)
    limit: int | None = None


class _Parser:
    def __init__(self, soql: str) -> None:
        self.tokens = tokenize(soql)
        self.position = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise SoqlError("unexpected end of query")
        self.position += 1
        return token

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].upper() == words[0]:
            saved = self.position
            for word in words:
                token = self.peek()
                if not (token and token[0] == "word" and token[1].upper() == word):
                    self.position = saved
                    return False
                self.position += 1
            return True
        return False

    def expect_keyword(self, *words: str) -> None:
        if not self.keyword(*words):
            raise SoqlError(f"expected {' '.join(words)} at {self.peek()!r}")

    def punct(self, symbol: str) -> bool:
        token = self.peek()
        if token and token[0] == "punct" and token[1] == symbol:
            self.position += 1
            return True
        return False

    def name(self) -> str:
        kind, text = self.take()
        if kind != "word":
            raise SoqlError(f"expected a field name, got {text!r}")
        return str(text)

    def parse(self) -> Query:
        self.expect_keyword("SELECT")
        fields: list[str] | None
        if self.keyword("COUNT"):
            if not (self.punct("(") and self.punct(")")):
                raise SoqlError("only COUNT() is supported")
            fields = None
        else:
            fields = [self.name()]
            while self.punct(","):
                fields.append(self.name())
        self.expect_keyword("FROM")
        query = Query(sobject=self.name(), fields=fields)
        if self.keyword("WHERE"):
            query.where = self.expression()
        if self.keyword("ORDER", "BY"):
            while True:
                name = self.name()
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                if self.keyword("NULLS") and not (self.keyword("FIRST") or self.keyword("LAST")):
                    raise SoqlError("expected NULLS FIRST or NULLS LAST")
                query.order.append((name, descending))
                if not self.punct(","):
                    break
        if self.keyword("LIMIT"):
            kind, value = self.take()
            if kind != "value" or not isinstance(value, Decimal):
                raise SoqlError("LIMIT needs a number")
            query.limit = int(value)
        if self.peek() is not None:
            raise SoqlError(f"unexpected {self.peek()!r}")
        return query

    def expression(self) -> Any:
        node = self.term()
        while self.keyword("OR"):
            node = ("or", node, self.term())
        return node

    def term(self) -> Any:
        node = self.factor()
        while self.keyword("AND"):
            node = ("and", node, self.factor())
        return node

    def factor(self) -> Any:
        if self.keyword("NOT"):
            return ("not", self.factor())
        if self.punct("("):
            node = self.expression()
            if not self.punct(")"):
                raise SoqlError("missing )")
            return node
        name = self.name()
        negated = self.keyword("NOT")
        if self.keyword("IN"):
            if not self.punct("("):
                raise SoqlError("IN needs a list")
            values = [self.value()]
            while self.punct(","):
                values.append(self.value())
            if not self.punct(")"):
                raise SoqlError("missing ) after IN list")
            node: Any = ("in", name, values)
            return ("not", node) if negated else node
        if negated:
            raise SoqlError("NOT must be followed by IN here")
        if self.keyword("LIKE"):
            return ("like", name, self.value())
        kind, operator = self.take()
        if kind != "op":
            raise SoqlError(f"expected an operator after {name}, got {operator!r}")
        return ("cmp", name, "!=" if operator == "<>" else operator, self.value())

    def value(self) -> Any:
        kind, value = self.take()
        if kind != "value":
            raise SoqlError(f"expected a value, got {value!r}")
        return value


def parse_soql(soql: str) -> Query:
    return _Parser(soql).parse()


def _comparable(stored: Any, literal: Any) -> tuple[Any, Any]:
    if isinstance(stored, str) and isinstance(literal, str):
        return stored.lower(), literal.lower()  # SOQL compares text without regard to case
    if isinstance(literal, Decimal) and isinstance(stored, int | float | Decimal):
        return Decimal(str(stored)), literal
    if isinstance(literal, datetime) and isinstance(stored, str):
        return datetime.fromisoformat(stored.replace("Z", "+00:00")), literal
    return stored, literal


class Evaluator:
    """Evaluate a parsed WHERE clause against rows of one object, following relationship paths."""

    def __init__(self, store: Store, sobject: str) -> None:
        self.store = store
        self.sobject = sobject

    def field_names(self, node: Any) -> Iterator[str]:
        if node is None:
            return
        kind = node[0]
        if kind in ("and", "or"):
            yield from self.field_names(node[1])
            yield from self.field_names(node[2])
        elif kind == "not":
            yield from self.field_names(node[1])
        else:
            yield node[1]

    def check_field(self, path: str) -> None:
        sobject = self.sobject
        parts = path.split(".")
        for relationship in parts[:-1]:
            if f"{relationship}Id" not in self.store.fields(sobject):
                raise SoqlError(
                    f"Didn't understand relationship '{relationship}' in field path", "INVALID_FIELD"
                )
            sobject = RELATIONSHIPS.get(relationship, relationship)
        if parts[-1] not in self.store.fields(sobject):
            raise SoqlError(f"No such column '{parts[-1]}' on entity '{sobject}'", "INVALID_FIELD")

    def resolve(self, row: dict[str, Any], path: str) -> Any:
        if "." not in path:
            return row.get(path)
        sobject = self.sobject
        current: dict[str, Any] | None = row
        parts = path.split(".")
        for relationship in parts[:-1]:
            if current is None:
                return None
            target = current.get(f"{relationship}Id")
            sobject = RELATIONSHIPS.get(relationship, relationship)
            current = self.store.get(sobject, target) if target else None
        return None if current is None else current.get(parts[-1])

    def matches(self, row: dict[str, Any], node: Any) -> bool:
        if node is None:
            return True
        kind = node[0]
        if kind == "and":
            return self.matches(row, node[1]) and self.matches(row, node[2])
        if kind == "or":
            return self.matches(row, node[1]) or self.matches(row, node[2])
        if kind == "not":
            return not self.matches(row, node[1])
        stored = self.resolve(row, node[1])
        if kind == "in":
            return any(_equal(stored, value) for value in node[2])
        if kind == "like":
            pattern = re.escape(str(node[2])).replace("%", ".*").replace("_", ".")
            return stored is not None and re.fullmatch(pattern, str(stored), re.IGNORECASE) is not None
        operator, literal = node[2], node[3]
        if operator == "=":
            return _equal(stored, literal)
        if operator == "!=":
            return not _equal(stored, literal)
        if stored is None or literal is None:
            return False
        left, right = _comparable(stored, literal)
        return bool(
            {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[operator]
        )


def _equal(stored: Any, literal: Any) -> bool:
    if stored is None or literal is None:
        return stored is None and literal is None
    left, right = _comparable(stored, literal)
    return bool(left == right)


def _lower_bound(node: Any, field_name: str = "SystemModstamp") -> datetime | None:
    """Find a `field >= / > datetime` that holds for the whole WHERE clause, to start the scan there."""
    if node is None:
        return None
    if node[0] == "and":
        bounds = [bound for bound in (_lower_bound(node[1]), _lower_bound(node[2])) if bound is not None]
        return max(bounds) if bounds else None
    if (
        node[0] == "cmp"
        and node[1] == field_name
        and node[2] in (">=", ">")
        and isinstance(node[3], datetime)
    ):
        return node[3]
    return None


# Server ----------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    number: int
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def soql(self) -> str | None:
        values = self.query.get("q")
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Fault:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    at: int | None = None
    match: Callable[[RecordedRequest], bool] | None = None
    times: int = 1


ACCESS_TOKEN = "test-access-token"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
REFRESH_TOKEN = "test-refresh-token"
USERNAME = "integration@acme.example"
PASSWORD = "correct horse <&> battery"  # XML specials: the client must escape them
SECURITY_TOKEN = "test-security-token"
ORG_ID = "00D000000000001AAA"
PARTNER_NS = "urn:partner.soap.sforce.com"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
RATE_LIMITED = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
UNAVAILABLE = [{"message": "Server temporarily unavailable.", "errorCode": "SERVER_UNAVAILABLE"}]
EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]


@dataclass
class _Cursor:
    rows: Iterator[dict[str, Any]]
    query: Query
    evaluator: Evaluator
    total: int
    served: int = 0
    last_offset: int = -1
    last_page: Any = None


class FakeSalesforce:
    """A running fake org: `with FakeSalesforce() as fake: fake.url ...`."""

    def __init__(
        self,
        *,
        store: Store | None = None,
        page_size: int = 2000,
        access_token: str = ACCESS_TOKEN,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        refresh_token: str = REFRESH_TOKEN,
        username: str = USERNAME,
        password: str = PASSWORD + SECURITY_TOKEN,
        api_limit: int = 15000,
        host: str = "127.0.0.1",
        record_bodies: bool = True,
        exact_totals: bool = True,
    ) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        self.page_size = page_size
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_tokens = {refresh_token}
        # SOAP login() takes the password with the security token appended, as one string.
        self.logins = {username: password}
        self.tokens = {access_token}
        self.api_limit = api_limit
        self.api_used = 0
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.record_bodies = record_bodies
        self.exact_totals = exact_totals
        self.save_errors: dict[str, dict[str, str]] = {}  # record id -> {"statusCode", "message"}
        self._cursors: dict[str, _Cursor] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # Lifecycle and conveniences --------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeSalesforce:
        # A short poll interval lets `stop` return quickly.
        serve = self._server.serve_forever
        self._thread = threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, name="fake-salesforce")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeSalesforce:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def memory(self) -> MemoryStore:
        assert isinstance(self.store, MemoryStore)
        return self.store

    def add(self, sobject: str, **values: Any) -> str:
        return self.memory.add(sobject, **values)

    def change(self, sobject: str, record_id: str, **values: Any) -> None:
        self.memory.change(sobject, record_id, **values)

    def delete(self, sobject: str, record_id: str) -> None:
        self.memory.delete(sobject, record_id)

    def expire_tokens(self) -> None:
        """Invalidate every access token, as a session timeout does."""
        self.tokens.clear()

    def fail(
        self,
        status: int,
        body: Any = None,
        *,
        at: int | None = None,
        match: Callable[[RecordedRequest], bool] | None = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer request number `at` (1-based), or the next `times` requests `match` takes, with an error."""
        self.faults.append(Fault(status, body, headers or {}, at, match, times))

    def queries(self) -> list[str]:
        return [request.soql for request in self.requests if request.soql]

    # Request handling --------------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            request.number = len(self.requests) + 1
            self.requests.append(request)
            fault = self._fault_for(request)
        if fault is not None:
            return self._json(fault.status, fault.body, fault.headers)
        path = request.path
        if path == "/services/oauth2/token" and request.method == "POST":
            return self._token(request)
        if path.startswith("/services/Soap/u/") and request.method == "POST":
            return self._soap_login(request, path[len("/services/Soap/u/") :])
        if not path.startswith("/services/data/v"):
            return self._error(404, "NOT_FOUND", "The requested resource does not exist")
        authorization = request.headers.get("authorization", "")
        if authorization.removeprefix("Bearer ") not in self.tokens:
            return self._json(401, EXPIRED)
        with self._lock:
            self.api_used += 1
        version, _, rest = path[len("/services/data/v") :].partition("/")
        try:
            return self._route(request, version, rest)
        except SoqlError as error:
            return self._error(400, error.code, str(error))

    def _fault_for(self, request: RecordedRequest) -> Fault | None:
        for fault in self.faults:
            if fault.times <= 0:
                continue
            if fault.at is not None and fault.at != request.number:
                continue
            if fault.match is not None and not fault.match(request):
                continue
            fault.times -= 1
            return fault
        return None

    def _route(self, request: RecordedRequest, version: str, rest: str) -> tuple[int, dict[str, str], bytes]:
        method = request.method
        parts = rest.strip("/").split("/")
        if parts[0] in ("query", "queryAll") and method == "GET":
            if len(parts) == 2:
                return self._more(version, parts[1])
            soql = request.soql
            if not soql:
                return self._error(400, "MALFORMED_QUERY", "q is required")
            return self._query(version, soql, include_deleted=parts[0] == "queryAll")
        if parts == ["composite", "sobjects"] and method == "PATCH":
            return self._update_collection(request)
        if parts[:2] == ["jobs", "query"]:
            if len(parts) == 2 and method == "POST":
                return self._create_job(request, version)
            if len(parts) == 3 and method == "GET":
                return self._job_info(parts[2])
            if len(parts) == 4 and parts[3] == "results" and method == "GET":
                return self._job_results(parts[2], request.query)
        return self._error(404, "NOT_FOUND", "The requested resource does not exist")

    # Queries ---------------------------------------------------------------------------------------

    def _plan(
        self, soql: str, include_deleted: bool
    ) -> tuple[Query, Evaluator, Iterator[dict[str, Any]], int]:
        query = parse_soql(soql)
        if query.sobject not in SCHEMA and not self.store.fields(query.sobject):
            raise SoqlError(f"sObject type '{query.sobject}' is not supported.", "INVALID_TYPE")
        evaluator = Evaluator(self.store, query.sobject)
        for name in [
            *(query.fields or []),
            *evaluator.field_names(query.where),
            *(n for n, _ in query.order),
        ]:
            if "." in name and query.fields and name in query.fields:
                raise SoqlError("relationship fields in SELECT are not supported by this fake")
            evaluator.check_field(name)
        deletable = "IsDeleted" in self.store.fields(query.sobject)
        where = query.where

        def keep(row: dict[str, Any]) -> bool:
            if deletable and not include_deleted and row.get("IsDeleted"):
                return False
            return evaluator.matches(row, where)

        rows: Iterator[dict[str, Any]] = (
            row for row in self.store.scan(query.sobject, _lower_bound(where)) if keep(row)
        )
        # Stores scan in (SystemModstamp, Id) order, so such queries can stream without sorting.
        natural = query.order in ([("SystemModstamp", False), ("Id", False)], [("SystemModstamp", False)], [])
        if not natural or self.exact_totals or query.fields is None:
            listed = list(rows)
            for name, descending in reversed(query.order):
                listed.sort(key=lambda row, n=name: _sort_key(evaluator.resolve(row, n)), reverse=descending)
            if query.limit is not None:
                listed = listed[: query.limit]
            return query, evaluator, iter(listed), len(listed)
        if query.limit is not None:
            rows = itertools.islice(rows, query.limit)
        return query, evaluator, rows, -1

    def _query(self, version: str, soql: str, *, include_deleted: bool) -> tuple[int, dict[str, str], bytes]:
        query, evaluator, rows, total = self._plan(soql, include_deleted)
        if query.fields is None:
            return self._json(200, {"totalSize": total, "done": True, "records": []})
        locator = f"01g{next(self._numbers):015d}"
        cursor = _Cursor(rows, query, evaluator, total)
        with self._lock:
            self._cursors[locator] = cursor
        return self._page(version, locator, cursor, 0)

    def _more(self, version: str, locator_and_offset: str) -> tuple[int, dict[str, str], bytes]:
        locator, _, offset = locator_and_offset.rpartition("-")
        cursor = self._cursors.get(locator)
        if cursor is None or not offset.isdigit():
            return self._error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(version, locator, cursor, int(offset))

    def _page(
        self, version: str, locator: str, cursor: _Cursor, offset: int
    ) -> tuple[int, dict[str, str], bytes]:
        if offset == cursor.last_offset:
            return self._json(200, cursor.last_page)
        if offset != cursor.served:
            return self._error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        fields = cursor.query.fields or []
        sobject = cursor.query.sobject
        records = []
        for row in itertools.islice(cursor.rows, self.page_size):
            record: dict[str, Any] = {
                "attributes": {
                    "type": sobject,
                    "url": f"/services/data/v{version}/sobjects/{sobject}/{row['Id']}",
                }
            }
            for name in fields:
                record[name] = json_value(row.get(name))
            records.append(record)
        cursor.served += len(records)
        more = len(records) == self.page_size and (cursor.total < 0 or cursor.served < cursor.total)
        if more and cursor.total < 0:
            # A lazy cursor cannot know it is done until it looks one row ahead.
            upcoming = next(cursor.rows, None)
            more = upcoming is not None
            if upcoming is not None:
                cursor.rows = itertools.chain([upcoming], cursor.rows)
        page: dict[str, Any] = {
            "totalSize": cursor.total if cursor.total >= 0 else cursor.served + (1 if more else 0),
            "done": not more,
            "records": records,
        }
        if more:
            page["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{cursor.served}"
        else:
            self._cursors.pop(locator, None)
        cursor.last_offset, cursor.last_page = offset, page
        return self._json(200, page)

    # Writes ----------------------------------------------------------------------------------------

    def _update_collection(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        try:
            body = request.json()
            records = body["records"]
        except (ValueError, KeyError, TypeError):
            return self._error(400, "JSON_PARSER_ERROR", "The request body is not a collection of records")
        if len(records) > 200:
            return self._error(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        results = []
        for record in records:
            record_id = record.get("id") or record.get("Id")
            sobject = (record.get("attributes") or {}).get("type")
            values = {name: value for name, value in record.items() if name not in ("attributes", "id", "Id")}
            results.append(self._save(sobject, record_id, values))
        return self._json(200, results)

    def _save(self, sobject: Any, record_id: Any, values: dict[str, Any]) -> dict[str, Any]:
        def failed(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
            return {
                "success": False,
                "errors": [{"statusCode": code, "message": message, "fields": fields or []}],
            }

        if not sobject or sobject not in SCHEMA:
            return failed("INVALID_TYPE", "sObject type is missing or unknown")
        if record_id in self.save_errors:
            error = self.save_errors[record_id]
            return {"id": record_id, **failed(error["statusCode"], error["message"])}
        row = self.store.get(sobject, record_id) if record_id else None
        if row is None:
            return failed("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])
        if row.get("IsDeleted"):
            return {"id": record_id, **failed("ENTITY_IS_DELETED", "entity is deleted")}
        unknown = sorted(set(values) - self.store.fields(sobject))
        if unknown:
            return {
                "id": record_id,
                **failed(
                    "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {sobject}", unknown
                ),
            }
        self.store.update(sobject, record_id, values)
        return {"id": record_id, "success": True, "errors": []}

    # OAuth -----------------------------------------------------------------------------------------

    def _token(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        form = {key: values[0] for key, values in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return self._json(
                400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
            )
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret", self.client_secret) != self.client_secret
        ):
            return self._json(
                400, {"error": "invalid_client_id", "error_description": "client identifier invalid"}
            )
        if form.get("refresh_token") not in self.refresh_tokens:
            return self._json(
                400, {"error": "invalid_grant", "error_description": "expired access/refresh token"}
            )
        token = f"00Dfake!token-{next(self._numbers)}"
        self.tokens.add(token)
        issued = str(int(datetime.now(UTC).timestamp() * 1000))
        return self._json(
            200,
            {
                "access_token": token,
                "instance_url": self.url,
                "id": f"{self.url}/id/00D000000000001AAA/005000000000001AAA",
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": base64.b64encode(issued.encode()).decode(),
            },
        )

    # SOAP login() -----------------------------------------------------------------------------------

    def _soap_login(self, request: RecordedRequest, version: str) -> tuple[int, dict[str, str], bytes]:
        """Answer the partner API's login() as Salesforce does: loginResponse, or a LoginFault with 500."""
        try:
            # Only the tests' own client talks to this fake.
            envelope = ElementTree.fromstring(request.body)  # noqa: S314
        except ElementTree.ParseError:
            return self._soap_fault("INVALID_LOGIN", INVALID_LOGIN)
        login = envelope.find(f"{{{SOAP_NS}}}Body/{{{PARTNER_NS}}}login")
        username = login.findtext(f"{{{PARTNER_NS}}}username") if login is not None else None
        password = login.findtext(f"{{{PARTNER_NS}}}password") if login is not None else None
        if username is None or self.logins.get(username) != password:
            return self._soap_fault("INVALID_LOGIN", INVALID_LOGIN)
        token = f"{ORG_ID}!session-{next(self._numbers)}"
        self.tokens.add(token)
        server_url = f"{self.url}/services/Soap/u/{version}/{ORG_ID}"
        body = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns="{PARTNER_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><loginResponse><result>
<metadataServerUrl>{self.url}/services/Soap/m/{version}/{ORG_ID}</metadataServerUrl>
<passwordExpired>false</passwordExpired><sandbox>false</sandbox>
<serverUrl>{server_url}</serverUrl>
<sessionId>{token}</sessionId>
<userId>005000000000001AAA</userId>
<userInfo><organizationId>{ORG_ID}</organizationId><userName>{xml_escape(username)}</userName></userInfo>
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""
        return 200, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()

    def _soap_fault(self, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
        body = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><soapenv:Fault>
<faultcode>sf:{code}</faultcode><faultstring>{code}: {xml_escape(message)}</faultstring>
<detail><sf:LoginFault xsi:type="sf:LoginFault">
<sf:exceptionCode>{code}</sf:exceptionCode><sf:exceptionMessage>{xml_escape(message)}</sf:exceptionMessage>
</sf:LoginFault></detail>
</soapenv:Fault></soapenv:Body></soapenv:Envelope>"""
        return 500, {"Content-Type": "text/xml;charset=UTF-8"}, body.encode()

    # Bulk API 2.0 ----------------------------------------------------------------------------------

    def _create_job(self, request: RecordedRequest, version: str) -> tuple[int, dict[str, str], bytes]:
        try:
            body = request.json()
            operation, soql = body["operation"], body["query"]
        except (ValueError, KeyError, TypeError):
            return self._error(400, "INVALIDJOB", "operation and query are required")
        if operation not in ("query", "queryAll"):
            return self._error(400, "INVALIDJOB", f"unsupported operation {operation}")
        query, _, rows, _ = self._plan(soql, include_deleted=operation == "queryAll")
        if query.fields is None or query.order or query.limit is not None:
            return self._error(
                400, "INVALIDJOB", "Bulk API 2.0 query jobs take no COUNT(), ORDER BY or LIMIT here"
            )
        job_id = f"750{next(self._numbers):015d}"
        stamp = wire_datetime(datetime.now(UTC))
        info = {
            "id": job_id,
            "operation": operation,
            "object": query.sobject,
            "createdById": "005000000000001AAA",
            "createdDate": stamp,
            "systemModstamp": stamp,
            "state": "UploadComplete",
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(version),
            "lineEnding": body.get("lineEnding", "LF"),
            "columnDelimiter": body.get("columnDelimiter", "COMMA"),
        }
        with self._lock:
            self._jobs[job_id] = {"info": info, "rows": rows, "fields": query.fields, "served": 0, "polls": 0}
        return self._json(200, info)

    def _job_info(self, job_id: str) -> tuple[int, dict[str, str], bytes]:
        job = self._jobs.get(job_id)
        if job is None:
            return self._error(404, "NOT_FOUND", "The requested resource does not exist")
        job["polls"] += 1
        # The first look finds the job still running, so clients must poll as against a real org.
        state = "InProgress" if job["polls"] == 1 else "JobComplete"
        return self._json(200, {**job["info"], "state": state})

    def _job_results(self, job_id: str, params: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        job = self._jobs.get(job_id)
        if job is None:
            return self._error(404, "NOT_FOUND", "The requested resource does not exist")
        if job["polls"] < 2:
            return self._error(
                412, "JOB_NOT_COMPLETE", "can only download query results of successfully completed bulk job"
            )
        locator = (params.get("locator") or [""])[0]
        offset = int(base64.b64decode(locator).decode()) if locator else 0
        if offset == job.get("last_offset"):
            return job["last_answer"]  # type: ignore[no-any-return]
        if offset != job["served"]:
            return self._error(400, "INVALID_LOCATOR", "invalid locator")
        size = int((params.get("maxRecords") or ["50000"])[0])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        fields = job["fields"]
        writer.writerow(fields)
        count = 0
        for row in itertools.islice(job["rows"], size):
            writer.writerow([csv_value(row.get(name)) for name in fields])
            count += 1
        job["served"] += count
        upcoming = next(job["rows"], None) if count == size else None
        if upcoming is not None:
            job["rows"] = itertools.chain([upcoming], job["rows"])
            next_locator = base64.b64encode(str(job["served"]).encode()).decode()
        else:
            next_locator = "null"
        headers = {
            "Content-Type": "text/csv",
            "Sforce-Locator": next_locator,
            "Sforce-NumberOfRecords": str(count),
        }
        answer = (200, self._limit_headers(headers), buffer.getvalue().encode())
        job["last_offset"], job["last_answer"] = offset, answer
        return answer

    # Answers ---------------------------------------------------------------------------------------

    def _limit_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}"}

    def _json(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        payload = json.dumps(body, separators=(",", ":")).encode()
        return (
            status,
            self._limit_headers({"Content-Type": "application/json;charset=UTF-8", **(headers or {})}),
            payload,
        )

    def _error(self, status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
        return self._json(status, [{"message": message, "errorCode": code}])


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, "") if value is None else (1, value)


def _handler_for(fake: FakeSalesforce) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; Nagle's algorithm would hold the body ~40 ms.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = RecordedRequest(
                number=0,
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={key.lower(): value for key, value in self.headers.items()},
                body=body if fake.record_bodies else b"",
            )
            try:
                status, headers, payload = fake.handle(request)
            except Exception as error:  # a bug in the fake must show up as a 500, not a hang
                status, headers = 500, {"Content-Type": "application/json"}
                payload = json.dumps([{"message": repr(error), "errorCode": "UNKNOWN_EXCEPTION"}]).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# Test helpers ----------------------------------------------------------------------------------------


def salesforce_config(fake: FakeSalesforce, **extra: Any) -> dict[str, Any]:
    """App config that points the Salesforce source at `fake`."""
    return {
        "SALESFORCE_INSTANCE_URL": fake.url,
        "SALESFORCE_ACCESS_TOKEN": ACCESS_TOKEN,
        "SALESFORCE_API_VERSION": "62.0",
        "SALESFORCE_BULK_THRESHOLD": 0,
        "SALESFORCE_RETRY_BACKOFF_SECONDS": 1,
        **extra,
    }


@dataclass
class Org:
    """The ids of a small seeded org."""

    vp: str
    manager: str
    reps: list[str]
    accounts: list[str]
    opportunities: list[str]
    tasks: list[str]
    events: list[str]
    contracts: list[str]


def seed_org(fake: FakeSalesforce, *, accounts: int = 3, tasks_per_account: int = 4) -> Org:
    """Fill `fake` with a VP, a manager, two reps, and accounts carrying every kind of activity."""
    standard = {"IsActive": True, "UserType": "Standard"}
    vp = fake.add("User", Name="Vera Park", Email="vera@example.com", **standard)
    manager = fake.add("User", Name="Mo Reyes", Email="mo@example.com", ManagerId=vp, **standard)
    reps = [
        fake.add("User", Name="Ria Shah", Email="ria@example.com", ManagerId=manager, **standard),
        fake.add("User", Name="Tom Ode", Email="tom@example.com", ManagerId=manager, **standard),
    ]
    fake.add("User", Name="Integration", Email="api@example.com", IsActive=True, UserType="AutomatedProcess")
    org = Org(vp, manager, reps, [], [], [], [], [])
    day = date(2026, 11, 2)
    subtypes = [("Call", "Outbound"), ("Call", "Inbound"), ("Email", None), ("Task", None)]
    for number in range(accounts):
        owner = reps[number % len(reps)]
        account = fake.add(
            "Account",
            Name=f"Account {number}",
            OwnerId=owner,
            Industry="Manufacturing",
            AnnualRevenue=Decimal("1200000.50") + number,
        )
        org.accounts.append(account)
        opportunity = fake.add(
            "Opportunity",
            AccountId=account,
            Name=f"Expansion {number}",
            OwnerId=owner,
            StageName="Proposal",
            Amount=Decimal("50000") + number,
            CloseDate=date(2027, 1, 31),
            IsClosed=False,
            IsWon=False,
        )
        org.opportunities.append(opportunity)
        for index in range(tasks_per_account):
            subtype, call_type = subtypes[index % len(subtypes)]
            org.tasks.append(
                fake.add(
                    "Task",
                    AccountId=account,
                    WhatId=opportunity if index == 0 else account,
                    OwnerId=owner,
                    Subject=f"{subtype} {number}.{index}",
                    TaskSubtype=subtype,
                    CallType=call_type,
                    ActivityDate=day - timedelta(days=index),
                )
            )
        org.events.append(
            fake.add(
                "Event",
                AccountId=account,
                WhatId=account,
                OwnerId=owner,
                Subject=f"Workshop {number}",
                ActivityDateTime=datetime(2026, 11, 3, 15, 30, tzinfo=UTC),
                ActivityDate=date(2026, 11, 3),
                IsAllDayEvent=False,
            )
        )
        org.contracts.append(
            fake.add(
                "Contract",
                AccountId=account,
                OwnerId=owner,
                ContractNumber=f"{number + 100:08d}",
                Status="Activated",
                StartDate=date(2026, 12, 1),
                ContractTerm=12,
                ActivatedDate=datetime(2026, 11, 4, 9, 0, tzinfo=UTC),
            )
        )
    return org
