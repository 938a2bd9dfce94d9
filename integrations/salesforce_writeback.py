"""Write each account's strategy status, objective and uncovered count back to Salesforce Account fields.

After a review, Salesforce's own reports and list views can then show which accounts have a strategy and
how much activity goes on without one. Values go to the custom fields named in the config, through the
sObject Collections API (`PATCH /composite/sobjects`, at most 200 records a call, `allOrNone: false`),
so one bad record fails alone and is reported with its Id.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from extensions import DbSession
from integrations.base import RecordError
from integrations.salesforce_client import Sleep, connect, translate_errors
from integrations.salesforce_settings import SalesforceConfigError, SalesforceSettings
from planning.models import Account, Finding, Review, Strategy, StrategyStatus

SOURCE = "salesforce"
COLLECTION_LIMIT = 200  # sObject Collections take at most 200 records per call
NO_STRATEGY = "none"
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# The strategy that speaks for an account: the one that covers activities first, then the newest.
STATUS_RANK = {
    StrategyStatus.ACTIVE: 0,
    StrategyStatus.ACHIEVED: 1,
    StrategyStatus.DRAFT: 2,
    StrategyStatus.ABANDONED: 3,
}


@dataclass(frozen=True)
class AccountValues:
    """What StratLink knows about one Salesforce account, ready to write."""

    external_id: str
    status: str
    objective: str | None
    uncovered: int


@dataclass
class WritebackResult:
    """What a write-back did (or, on a dry run, would do)."""

    enabled: bool
    dry_run: bool
    accounts: int = 0
    updated: int = 0
    requests: int = 0
    errors: list[RecordError] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None

    @property
    def failed(self) -> int:
        return len(self.errors)


def write_back(
    session: DbSession,
    review: Review,
    config: Mapping[str, Any],
    *,
    dry_run: bool = False,
    sleep: Sleep = time.sleep,
) -> WritebackResult:
    """Send every live Salesforce account's strategy status, objective and uncovered count to Salesforce."""
    # A dry run sends nothing, so it may preview before any credentials are set.
    settings = SalesforceSettings.from_config(config, check=not dry_run)
    if not settings.writeback and not dry_run:
        return WritebackResult(
            enabled=False, dry_run=False, message="write-back is off: set SALESFORCE_WRITEBACK=1"
        )
    fields = _target_fields(settings)
    result = WritebackResult(enabled=settings.writeback, dry_run=dry_run)
    connection = None
    for chunk in _account_values(session, review, settings.writeback_objective_length):
        records = [_payload(values, fields) for values in chunk]
        result.accounts += len(records)
        if dry_run:
            result.changes.extend(records)
            continue
        if connection is None:
            connection = connect(settings, sleep=sleep)
        with translate_errors("writing back to Salesforce"):
            answers = connection.client.restful(
                "composite/sobjects",
                method="PATCH",
                data=json.dumps({"allOrNone": False, "records": records}),
            )
        result.requests += 1
        _tally(result, chunk, answers)
    return result


def _target_fields(settings: SalesforceSettings) -> dict[str, str]:
    """The configured Account fields by what they hold; an empty name leaves that value out."""
    fields = {
        "status": settings.writeback_status_field,
        "objective": settings.writeback_objective_field,
        "uncovered": settings.writeback_uncovered_field,
    }
    for name in fields.values():
        if name and not FIELD_NAME.match(name):
            raise SalesforceConfigError(f"{name!r} is not a Salesforce field name")
    chosen = {key: name for key, name in fields.items() if name}
    if not chosen:
        raise SalesforceConfigError("no write-back field is configured (SALESFORCE_WRITEBACK_*_FIELD)")
    return chosen


def _payload(values: AccountValues, fields: Mapping[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": "Account"}, "id": values.external_id}
    for key, name in fields.items():
        record[name] = getattr(values, key)
    return record


def _tally(result: WritebackResult, chunk: Sequence[AccountValues], answers: Any) -> None:
    if not isinstance(answers, list) or len(answers) != len(chunk):
        raise SalesforceConfigError("Salesforce answered the collection update with an unexpected body")
    for values, answer in zip(chunk, answers, strict=True):
        if answer.get("success"):
            result.updated += 1
            continue
        errors = answer.get("errors") or [{}]
        first = errors[0]
        fields = first.get("fields") or []
        result.errors.append(
            RecordError(
                stream="writeback",
                external_id=values.external_id,
                field=", ".join(fields) or None,
                message=f"{first.get('statusCode', 'UNKNOWN')}: {first.get('message', '')}".strip(),
            )
        )


def _account_values(
    session: DbSession, review: Review, objective_length: int
) -> Iterator[list[AccountValues]]:
    """Yield the values of the live Salesforce accounts, COLLECTION_LIMIT at a time, in id order."""
    after = 0
    while True:
        accounts = session.execute(
            select(Account.id, Account.external_id)
            .where(Account.source == SOURCE, Account.deleted.is_(False), Account.id > after)
            .order_by(Account.id)
            .limit(COLLECTION_LIMIT)
        ).all()
        if not accounts:
            return
        ids = [account.id for account in accounts]
        after = ids[-1]
        strategies = _current_strategies(session, ids)
        uncovered = dict(
            session.execute(
                select(Finding.account_id, Finding.uncovered_total).where(
                    Finding.review_id == review.id,
                    Finding.rule == "tactics_without_strategy",
                    Finding.status != "resolved",
                    Finding.account_id.in_(ids),
                )
            ).all()
        )
        chunk = []
        for account in accounts:
            strategy = strategies.get(account.id)
            chunk.append(
                AccountValues(
                    external_id=account.external_id,
                    status=strategy[0] if strategy else NO_STRATEGY,
                    objective=_fit(strategy[1], objective_length) if strategy else None,
                    uncovered=int(uncovered.get(account.id, 0)),
                )
            )
        yield chunk


def _current_strategies(session: DbSession, account_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Pick, per account, the strategy that speaks for it: (status, objective)."""
    rows = session.execute(
        select(
            Strategy.account_id, Strategy.status, Strategy.objective, Strategy.updated_at, Strategy.id
        ).where(Strategy.account_id.in_(account_ids))
    ).all()
    best: dict[int, Any] = {}
    for row in rows:
        key = (STATUS_RANK[StrategyStatus(row.status)], -row.updated_at.timestamp(), -row.id)
        if row.account_id not in best or key < best[row.account_id][0]:
            best[row.account_id] = (key, row)
    return {
        account_id: (StrategyStatus(row.status).value, row.objective) for account_id, (_, row) in best.items()
    }


def _fit(text: str, limit: int) -> str:
    """Cut text to the Salesforce field's length, marking the cut."""
    if limit <= 0 or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"
