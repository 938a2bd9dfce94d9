"""What StratLink reads from Salesforce: one declaration per object, and the mapping of its rows.

Each `SObjectStream` names an object, the fields to select, its cursor field and the function that turns
one row into one normalized record of `integrations.base`. This module and `integrations.salesforce`
are the only places that know Salesforce field names. Rows come from the REST API (JSON types) or from
Bulk API 2.0 CSV (strings, "" for null); the readers below accept both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock_time
from decimal import Decimal, InvalidOperation
from typing import Any

from simple_salesforce.format import format_soql

from integrations.base import (
    AccountRecord,
    ActivityRecord,
    OpportunityRecord,
    Record,
    RecordInvalid,
    UserRecord,
)

Row = Mapping[str, Any]

# A date without a time sits at noon UTC, so it stays on its calendar day from UTC-11 to UTC+11.
DATE_ONLY_HOUR = clock_time(12, tzinfo=UTC)
OPPORTUNITY_PREFIX = "006"
TASK_KINDS = {"Call": "call", "Email": "email", "ListEmail": "email", "Task": "task"}
CALL_DIRECTIONS = {"Inbound": "inbound", "Outbound": "outbound"}


# Reading values: REST rows carry JSON types, Bulk API CSV rows carry strings ("" for null). ---------


def _text(row: Row, name: str) -> str | None:
    value = row.get(name)
    if value.__class__ is str:  # the common case first: this runs several times per row of a sync
        return value or None
    if value is None or value == "":
        return None
    return str(value)


def _flag(row: Row, name: str) -> bool:
    value = row.get(name)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _decimal(row: Row, name: str, field_name: str) -> Decimal | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise RecordInvalid(field_name, f"{value!r} is not a number") from None


def _date(row: Row, name: str, field_name: str) -> date | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat((value if value.__class__ is str else str(value))[:10])
    except ValueError:
        raise RecordInvalid(field_name, f"{value!r} is not a date") from None


def _instant(row: Row, name: str, field_name: str) -> datetime | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value if value.__class__ is str else str(value))
    except ValueError:
        raise RecordInvalid(field_name, f"{value!r} is not a date and time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _noon(day: date) -> datetime:
    return datetime.combine(day, DATE_ONLY_HOUR)


def _required(value: str | None, field_name: str, message: str) -> str:
    if value is None:
        raise RecordInvalid(field_name, message)
    return value


# The mapping: one function per object, each turning one row into one normalized record. -----------


def user_record(row: Row, base_url: str) -> UserRecord:
    return UserRecord(
        external_id=row["Id"],
        email=_required(_text(row, "Email"), "email", "is empty"),
        name=_text(row, "Name") or "",
        role=None,
        manager_external_id=_text(row, "ManagerId"),
        active=_flag(row, "IsActive"),
        modified_at=_instant(row, "SystemModstamp", "modified_at"),
    )


def account_record(row: Row, base_url: str) -> AccountRecord:
    return AccountRecord(
        external_id=row["Id"],
        name=_text(row, "Name") or "",
        owner_external_id=_text(row, "OwnerId"),
        industry=_text(row, "Industry"),
        annual_revenue=_decimal(row, "AnnualRevenue", "annual_revenue"),
        url=base_url + row["Id"],
        deleted=_flag(row, "IsDeleted"),
        modified_at=_instant(row, "SystemModstamp", "modified_at"),
    )


def opportunity_record(row: Row, base_url: str) -> OpportunityRecord:
    return OpportunityRecord(
        external_id=row["Id"],
        account_external_id=_required(
            _text(row, "AccountId"), "account_id", "the opportunity has no account"
        ),
        name=_text(row, "Name") or "",
        owner_external_id=_text(row, "OwnerId"),
        stage=_text(row, "StageName"),
        amount=_decimal(row, "Amount", "amount"),
        close_date=_date(row, "CloseDate", "close_date"),
        is_closed=_flag(row, "IsClosed"),
        is_won=_flag(row, "IsWon"),
        url=base_url + row["Id"],
        deleted=_flag(row, "IsDeleted"),
        modified_at=_instant(row, "SystemModstamp", "modified_at"),
    )


def _opportunity_of(row: Row) -> str | None:
    what = _text(row, "WhatId")
    return what if what is not None and what.startswith(OPPORTUNITY_PREFIX) else None


def task_record(row: Row, base_url: str) -> ActivityRecord:
    # A task's time is its ActivityDate (the day it was due or done); undated tasks fall back to creation.
    day = _date(row, "ActivityDate", "occurred_at")
    occurred_at = _noon(day) if day is not None else _instant(row, "CreatedDate", "occurred_at")
    return ActivityRecord(
        external_id=row["Id"],
        account_external_id=_required(_text(row, "AccountId"), "account_id", "the task has no account"),
        kind=TASK_KINDS.get(_text(row, "TaskSubtype") or "Task", "task"),
        occurred_at=_required_time(occurred_at),
        owner_external_id=_text(row, "OwnerId"),
        direction=CALL_DIRECTIONS.get(_text(row, "CallType") or "", "unknown"),
        subject=_text(row, "Subject"),
        opportunity_external_id=_opportunity_of(row),
        url=base_url + row["Id"],
        deleted=_flag(row, "IsDeleted"),
        modified_at=_instant(row, "SystemModstamp", "modified_at"),
    )


def event_record(row: Row, base_url: str) -> ActivityRecord:
    occurred_at = _instant(row, "ActivityDateTime", "occurred_at")
    if occurred_at is None or _flag(row, "IsAllDayEvent"):
        day = _date(row, "ActivityDate", "occurred_at")
        occurred_at = _noon(day) if day is not None else occurred_at
    return ActivityRecord(
        external_id=row["Id"],
        account_external_id=_required(_text(row, "AccountId"), "account_id", "the event has no account"),
        kind="meeting",
        occurred_at=_required_time(occurred_at),
        owner_external_id=_text(row, "OwnerId"),
        subject=_text(row, "Subject"),
        opportunity_external_id=_opportunity_of(row),
        url=base_url + row["Id"],
        deleted=_flag(row, "IsDeleted"),
        modified_at=_instant(row, "SystemModstamp", "modified_at"),
    )


def contract_record(row: Row, base_url: str) -> ActivityRecord:
    # A contract counts when it was committed to: its activation, or its creation while still a draft.
    # StartDate is a business date that may lie months away, so it goes in the subject instead.
    occurred_at = _instant(row, "ActivatedDate", "occurred_at") or _instant(row, "CreatedDate", "occurred_at")
    number = _text(row, "ContractNumber") or row["Id"]
    status = _text(row, "Status") or "Draft"
    term = _text(row, "ContractTerm")
    start = _date(row, "StartDate", "subject")
    details = [status]
    if term is not None:
        details.append(f"{term.removesuffix('.0')} months" + (f" from {start.isoformat()}" if start else ""))
    elif start is not None:
        details.append(f"from {start.isoformat()}")
    return ActivityRecord(
        external_id=row["Id"],
        account_external_id=_required(_text(row, "AccountId"), "account_id", "the contract has no account"),
        kind="contract",
        occurred_at=_required_time(occurred_at),
        owner_external_id=_text(row, "OwnerId"),
        subject=f"Contract {number}: {', '.join(details)}",
        url=base_url + row["Id"],
        deleted=_flag(row, "IsDeleted"),
        modified_at=_instant(row, "SystemModstamp", "modified_at"),
    )


def _required_time(moment: datetime | None) -> datetime:
    if moment is None:
        raise RecordInvalid("occurred_at", "the activity has no date")
    return moment


@dataclass(frozen=True)
class SObjectStream:
    """One Salesforce object read into one of our streams: what to select and how to map it."""

    stream: str
    sobject: str
    fields: tuple[str, ...]
    to_record: Callable[[Row, str], Record]
    cursor_field: str = "SystemModstamp"
    # Objects with IsDeleted are read through /queryAll so that deletions come with the changes.
    deletable: bool = True
    # The relationship path to the Account, for SALESFORCE_ACCOUNT_RECORD_TYPES ("" on Account itself).
    account_path: str | None = "Account."
    # Fixed filters: (field, operator, value); values go through format_soql like every other.
    conditions: tuple[tuple[str, str, Any], ...] = ()


USERS = SObjectStream(
    "users",
    "User",
    ("Id", "Name", "Email", "ManagerId", "IsActive", "SystemModstamp"),
    user_record,
    deletable=False,
    account_path=None,
    # Integration, portal and automated users are not people who plan accounts.
    conditions=(("UserType", "=", "Standard"),),
)
ACCOUNTS = SObjectStream(
    "accounts",
    "Account",
    ("Id", "Name", "OwnerId", "Industry", "AnnualRevenue", "IsDeleted", "SystemModstamp"),
    account_record,
    account_path="",
)
OPPORTUNITIES = SObjectStream(
    "opportunities",
    "Opportunity",
    (
        "Id",
        "AccountId",
        "Name",
        "OwnerId",
        "StageName",
        "Amount",
        "CloseDate",
        "IsClosed",
        "IsWon",
        "IsDeleted",
        "SystemModstamp",
    ),
    opportunity_record,
    conditions=(("AccountId", "!=", None),),
)
TASKS = SObjectStream(
    "activities",
    "Task",
    (
        "Id",
        "AccountId",
        "WhatId",
        "OwnerId",
        "Subject",
        "TaskSubtype",
        "CallType",
        "ActivityDate",
        "CreatedDate",
        "IsDeleted",
        "SystemModstamp",
    ),
    task_record,
    # Tasks on leads or contacts without an account are outside account planning, not errors.
    conditions=(("AccountId", "!=", None),),
)
EVENTS = SObjectStream(
    "activities",
    "Event",
    (
        "Id",
        "AccountId",
        "WhatId",
        "OwnerId",
        "Subject",
        "ActivityDateTime",
        "ActivityDate",
        "IsAllDayEvent",
        "IsDeleted",
        "SystemModstamp",
    ),
    event_record,
    conditions=(("AccountId", "!=", None),),
)
CONTRACTS = SObjectStream(
    "activities",
    "Contract",
    (
        "Id",
        "AccountId",
        "OwnerId",
        "ContractNumber",
        "Status",
        "StartDate",
        "ContractTerm",
        "ActivatedDate",
        "CreatedDate",
        "IsDeleted",
        "SystemModstamp",
    ),
    contract_record,
)

# Parents before the records that refer to them, as integrations.base.STREAMS orders them.
STREAM_OBJECTS: dict[str, tuple[SObjectStream, ...]] = {
    "users": (USERS,),
    "accounts": (ACCOUNTS,),
    "opportunities": (OPPORTUNITIES,),
    "activities": (TASKS, EVENTS, CONTRACTS),
}


def build_soql(
    spec: SObjectStream,
    *,
    until: datetime,
    since: datetime | None = None,
    record_types: Sequence[str] = (),
    count: bool = False,
    ordered: bool = True,
) -> str:
    """Write the SOQL for one object between two SystemModstamps; every value goes through format_soql."""
    clauses = [format_soql("{:literal} <= {}", spec.cursor_field, until)]
    if since is not None:
        clauses.append(format_soql("{:literal} >= {}", spec.cursor_field, since))
    for name, operator, value in spec.conditions:
        clauses.append(format_soql("{:literal} {:literal} {}", name, operator, value))
    if record_types and spec.account_path is not None:
        path = f"{spec.account_path}RecordType.DeveloperName"
        clauses.append(format_soql("{:literal} IN {}", path, list(record_types)))
    selected = "COUNT()" if count else ", ".join(spec.fields)
    soql = format_soql(
        "SELECT {:literal} FROM {:literal} WHERE {:literal}", selected, spec.sobject, " AND ".join(clauses)
    )
    if ordered and not count:
        soql += format_soql(" ORDER BY {:literal}, Id", spec.cursor_field)
    return soql
