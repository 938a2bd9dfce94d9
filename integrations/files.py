"""The offline source: one JSON import file in the format DESIGN.md describes.

The file is one JSON object with optional arrays `users`, `accounts`, `activities`, `opportunities` and
`strategies`. Records carry the CRM's own ids as `id` and refer to each other by them. Type rules, chosen
to be strict where a guess would be risky and lenient where exports differ:
- ids and references are strings; whole numbers are accepted too (HubSpot ids are numeric) and read as text;
- booleans must be JSON `true`/`false`;
- money may be a JSON number or a numeric string ("50000", "49.99");
- times are ISO 8601 strings; a time without a zone is UTC; dates are YYYY-MM-DD;
- unknown keys are ignored; `null` is the same as leaving an optional field out.
A file that cannot be read as such a document raises `ImportFileError`; a bad record becomes a
`RecordError` naming the stream, the record's id and the field, and the other records still land.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from integrations.base import (
    STREAMS,
    AccountRecord,
    ActivityRecord,
    Batch,
    OpportunityRecord,
    Record,
    RecordError,
    RecordInvalid,
    SourceError,
    SourceReport,
    StrategyRecord,
    UserRecord,
)

BATCH_SIZE = 2000


class ImportFileError(SourceError):
    """The import file is missing, unreadable, or not the JSON document the format asks for."""


class FileSource:
    """Records from one JSON import file; every read is a full read (files carry no cursor)."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.report = SourceReport()
        self._document: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], path: str | Path | None = None, **_: Any) -> FileSource:
        """Build the source from `path`, or from STRATLINK_IMPORT_PATH when no path is given."""
        chosen = path or config.get("STRATLINK_IMPORT_PATH") or None
        if chosen is None:
            raise ImportFileError(
                "no import file given: set STRATLINK_IMPORT_PATH (or pass --path FILE to the sync command)"
            )
        source = cls(chosen)
        if not source.path.is_file():
            raise ImportFileError(f"import file {str(source.path)!r} does not exist or is not a file")
        return source

    def streams(self) -> Sequence[str]:
        return STREAMS

    def read(self, stream: str, cursor: str | None, *, full: bool) -> Iterator[Batch]:
        """Yield the stream's records in batches; bad entries travel as the batch's errors."""
        parse = PARSERS[stream]
        entries = self._load().get(stream) or []
        records: list[Record] = []
        errors: list[RecordError] = []
        first_at: dict[str, int] = {}  # each id's first entry: a file holds one record per id
        for index, entry in enumerate(entries):
            try:
                record = parse(entry, index)
            except _BadEntry as bad:
                errors.append(RecordError(stream, bad.external_id, bad.field, bad.message))
            else:
                external_id = getattr(record, "external_id", "")
                first = first_at.setdefault(external_id, index)
                if first == index:
                    records.append(record)
                else:
                    message = f"entry {index} repeats the id of entry {first}; only the first is imported"
                    errors.append(RecordError(stream, external_id, "id", message))
            if len(records) + len(errors) >= BATCH_SIZE:
                yield Batch(stream, records, errors)
                records, errors = [], []
        if records or errors:
            yield Batch(stream, records, errors)

    def _load(self) -> dict[str, Any]:
        if self._document is None:
            self._document = load_document(self.path)
            present = [stream for stream in STREAMS if stream in self._document]
            if not present:
                self.report.notes.append(f"{self.path.name} holds none of the arrays {', '.join(STREAMS)}")
        return self._document


def load_document(path: Path) -> dict[str, Any]:
    """Read and check the top level of an import file, or raise `ImportFileError` saying what and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise ImportFileError(f"import file {str(path)!r} does not exist") from error
    except UnicodeDecodeError as error:
        raise ImportFileError(f"{path}: not UTF-8 text (byte {error.start})") from error
    except OSError as error:
        raise ImportFileError(f"cannot read import file {str(path)!r}: {error.strerror}") from error
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise ImportFileError(
            f"{path}: not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from error
    except ValueError as error:
        raise ImportFileError(f"{path}: not valid JSON: {error}{_where_constant(text)}") from error
    if not isinstance(document, dict):
        raise ImportFileError(
            f"{path}: the top level must be a JSON object with arrays {', '.join(STREAMS)}, "
            f"got {_json_kind(document)}"
        )
    for stream in STREAMS:
        value = document.get(stream)
        if value is not None and not isinstance(value, list):
            raise ImportFileError(f'{path}: "{stream}" must be an array, got {_json_kind(value)}')
    return document


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity, which are not JSON and not amounts anyone meant.
    raise ValueError(f"{name} is not allowed in JSON")


# A JSON string, or one of the constants Python's json reads and JSON has not: the first constant
# outside a string is the one the parser refused, since everything before it parsed.
_STRING_OR_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


def _where_constant(text: str) -> str:
    """Say where the first NaN or Infinity of a JSON text stands: " at line 3, column 19"."""
    for match in _STRING_OR_CONSTANT.finditer(text):
        if match.group(1):
            start = match.start(1)
            line = text.count("\n", 0, start) + 1
            column = start - text.rfind("\n", 0, start)  # rfind gives -1 on the first line
            return f" at line {line}, column {column}"
    return ""


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


class _BadEntry(Exception):
    def __init__(self, external_id: str | None, field: str | None, message: str) -> None:
        super().__init__(message)
        self.external_id = external_id
        self.field = field
        self.message = message


class _Fields:
    """Typed access to one entry's fields; a wrong type raises `RecordInvalid` naming the field."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry

    def _get(self, name: str, required: bool) -> Any:
        value = self.entry.get(name)
        if isinstance(value, str) and not value.strip():
            # A blank cell, as spreadsheet exports write it: left out, like null.
            value = None
        if value is None and required:
            raise RecordInvalid(name, "is required")
        return value

    def text(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._get(name, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise RecordInvalid(name, f"must be a string, got {_show(value)}")
        return value

    def required_text(self, name: str) -> str:
        value = self.text(name, required=True)
        assert value is not None
        return value

    def reference(self, name: str, *, required: bool = False) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        return _identifier(name, value)

    def required_reference(self, name: str) -> str:
        value = self.reference(name, required=True)
        assert value is not None
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise RecordInvalid(name, f"must be true or false, got {_show(value)}")
        return value

    def money(self, name: str) -> Decimal | None:
        value = self._get(name, False)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RecordInvalid(name, f"{_show(value)} is not a number")
        try:
            # str() first: Decimal(0.1) would carry the float's binary error into the amount.
            number = Decimal(str(value).strip())
        except InvalidOperation as error:
            raise RecordInvalid(name, f"{_show(value)} is not a number") from error
        if not number.is_finite() or (isinstance(value, float) and not math.isfinite(value)):
            raise RecordInvalid(name, f"{_show(value)} is not a number")
        return number

    def moment(self, name: str, *, required: bool = False) -> datetime | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str):
            raise RecordInvalid(name, f"{_show(value)} is not an ISO 8601 time")
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as error:
            raise RecordInvalid(name, f"{_show(value)} is not an ISO 8601 time") from error
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)

    def required_moment(self, name: str) -> datetime:
        value = self.moment(name, required=True)
        assert value is not None
        return value

    def day(self, name: str) -> date | None:
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, str) or len(value.strip()) != 10:
            raise RecordInvalid(name, f"{_show(value)} is not a date (YYYY-MM-DD)")
        try:
            return date.fromisoformat(value.strip())
        except ValueError as error:
            raise RecordInvalid(name, f"{_show(value)} is not a date (YYYY-MM-DD)") from error

    def references(self, name: str) -> tuple[str, ...]:
        value = self._get(name, False)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise RecordInvalid(name, f"must be an array of ids, got {_show(value)}")
        return tuple(_identifier(name, item) for item in value)


def _identifier(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordInvalid(name, f"must be a string, got {_show(value)}")
    text = str(value).strip()
    if not text:
        raise RecordInvalid(name, "must not be empty")
    return text


def _show(value: Any) -> str:
    """Render a value for a message: strings quoted, everything else as JSON, long ones cut."""
    shown = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _entry_parser(build: Callable[[_Fields, str], Record]) -> Callable[[Any, int], Record]:
    """Wrap a builder with the checks every entry gets: an object with an id."""

    def parse(entry: Any, index: int) -> Record:
        if not isinstance(entry, dict):
            raise _BadEntry(None, None, f"entry {index} must be an object, got {_json_kind(entry)}")
        fields = _Fields(entry)
        try:
            external_id = fields.required_reference("id")
        except RecordInvalid as error:
            if error.message == "is required":
                raise _BadEntry(None, "id", f"entry {index} has no id") from error
            raise _BadEntry(None, "id", f"entry {index}: id {error.message}") from error
        try:
            return build(fields, external_id)
        except RecordInvalid as error:
            raise _BadEntry(external_id, error.field, error.message) from error

    return parse


@_entry_parser
def _user(fields: _Fields, external_id: str) -> Record:
    return UserRecord(
        external_id=external_id,
        email=fields.required_text("email"),
        name=fields.required_text("name"),
        role=fields.text("role"),
        manager_external_id=fields.reference("manager_id"),
        active=fields.boolean("active", True),
    )


@_entry_parser
def _account(fields: _Fields, external_id: str) -> Record:
    return AccountRecord(
        external_id=external_id,
        name=fields.required_text("name"),
        owner_external_id=fields.reference("owner_id"),
        industry=fields.text("industry"),
        annual_revenue=fields.money("annual_revenue"),
        url=fields.text("url"),
        deleted=fields.boolean("deleted", False),
    )


@_entry_parser
def _activity(fields: _Fields, external_id: str) -> Record:
    return ActivityRecord(
        external_id=external_id,
        account_external_id=fields.required_reference("account_id"),
        kind=fields.required_text("kind"),
        occurred_at=fields.required_moment("occurred_at"),
        owner_external_id=fields.reference("owner_id"),
        direction=fields.text("direction", default="unknown") or "unknown",
        subject=fields.text("subject"),
        opportunity_external_id=fields.reference("opportunity_id"),
        url=fields.text("url"),
        deleted=fields.boolean("deleted", False),
    )


@_entry_parser
def _opportunity(fields: _Fields, external_id: str) -> Record:
    return OpportunityRecord(
        external_id=external_id,
        account_external_id=fields.required_reference("account_id"),
        name=fields.required_text("name"),
        owner_external_id=fields.reference("owner_id"),
        stage=fields.text("stage"),
        amount=fields.money("amount"),
        close_date=fields.day("close_date"),
        is_closed=fields.boolean("is_closed", False),
        is_won=fields.boolean("is_won", False),
        url=fields.text("url"),
        deleted=fields.boolean("deleted", False),
    )


@_entry_parser
def _strategy(fields: _Fields, external_id: str) -> Record:
    return StrategyRecord(
        external_id=external_id,
        account_external_id=fields.required_reference("account_id"),
        author_external_id=fields.reference("author_id"),
        objective=fields.text("objective", default="") or "",
        customer_view=fields.text("customer_view", default="") or "",
        approach=fields.text("approach", default="") or "",
        success_measure=fields.text("success_measure", default="") or "",
        target_date=fields.day("target_date"),
        review_date=fields.day("review_date"),
        status=fields.text("status", default="draft") or "draft",
        activity_external_ids=fields.references("activity_ids"),
    )


PARSERS: dict[str, Callable[[Any, int], Record]] = {
    "users": _user,
    "accounts": _account,
    "activities": _activity,
    "opportunities": _opportunity,
    "strategies": _strategy,
}
