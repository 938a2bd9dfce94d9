"""The SQL review agrees with a plain-Python reading of the rule on randomly built orgs."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from planning.models import Account, Activity, Link, Opportunity, Strategy
from planning.review import run_review
from tests.factories import link, make_account, make_activity, make_opportunity, make_strategy, make_user, utc

KINDS = ["call", "email", "meeting", "task", "note", "contract"]
STATUSES = ["draft", "active", "active", "achieved", "abandoned"]


def build_random_org(db, seed):
    """Twelve accounts with activities around the window edges, strategies of every status, stray links."""
    rng = random.Random(seed)
    reps = [make_user(db) for _ in range(3)]
    accounts = [make_account(db, owner=rng.choice(reps), deleted=rng.random() < 0.08) for _ in range(12)]
    strategies = []
    for account in accounts:
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            review_date = rng.choice([None, date(2026, 10, 1), date(2026, 10, 31), date(2026, 11, 30)])
            strategies.append(
                make_strategy(db, account=account, status=rng.choice(STATUSES), review_date=review_date)
            )
        for _ in range(rng.randint(0, 3)):
            make_opportunity(
                db,
                account=account,
                amount=rng.choice([0, 5000, 12345, 250000]),
                is_closed=rng.random() < 0.3,
                deleted=rng.random() < 0.1,
            )
    for account in accounts:
        for _ in range(rng.randint(0, 9)):
            # Times cluster near the window's edges in UTC and in Tokyo, and the 60-day edge.
            base = rng.choice(
                [utc(2026, 10, 2), utc(2026, 11, 1), utc(2026, 10, 1, 15), utc(2026, 9, 2), utc(2026, 10, 15)]
            )
            moment = base + timedelta(seconds=rng.choice([-1, 0, 1, 3600, -3600, 86400 * 3]))
            activity = make_activity(
                db,
                account=account,
                occurred_at=moment,
                kind=rng.choice(KINDS),
                deleted=rng.random() < 0.1,
            )
            if strategies and rng.random() < 0.4:
                # Mostly the account's own strategies, sometimes another account's.
                own = [s for s in strategies if s.account_id == account.id]
                link(db, rng.choice(own if own and rng.random() < 0.8 else strategies), activity)
    db.commit()


def expected_findings(db, as_of, window_days, min_activities, stale_days, timezone):
    """Apply DESIGN.md's rule to every row, in Python."""
    zone = ZoneInfo(timezone)

    def window(days):
        start = datetime.combine(as_of - timedelta(days=days - 1), time.min, tzinfo=zone)
        end = datetime.combine(as_of + timedelta(days=1), time.min, tzinfo=zone)
        return start, end

    start, end = window(window_days)
    stale_start, _ = window(stale_days)
    accounts = {a.id: a for a in db.scalars(select(Account))}
    strategies = {s.id: s for s in db.scalars(select(Strategy))}
    links = {link.activity_id: link.strategy_id for link in db.scalars(select(Link))}
    activities = list(db.scalars(select(Activity)))
    pipeline = Counter()
    for opportunity in db.scalars(select(Opportunity)):
        if not opportunity.is_closed and not opportunity.deleted:
            pipeline[opportunity.account_id] += opportunity.amount or Decimal(0)

    uncovered: dict[int, list[Activity]] = {}
    for activity in activities:
        if activity.deleted or not start <= activity.occurred_at < end:
            continue
        strategy = strategies.get(links.get(activity.id))
        covered = (
            strategy is not None
            and strategy.account_id == activity.account_id
            and strategy.status.value in ("active", "achieved")
        )
        if not covered:
            uncovered.setdefault(activity.account_id, []).append(activity)

    found = set()
    for account_id, items in uncovered.items():
        if accounts[account_id].deleted:
            continue
        kinds = Counter(item.kind.value for item in items)
        if len(items) >= min_activities or kinds["contract"]:
            has_active = any(
                s.account_id == account_id and s.status.value == "active" for s in strategies.values()
            )
            found.add(
                (
                    "tactics_without_strategy",
                    "unlinked" if has_active else "no_strategy",
                    account_id,
                    None,
                    tuple(sorted(kinds.items())),
                    min(item.occurred_at for item in items),
                    pipeline[account_id],
                )
            )
    for strategy in strategies.values():
        if strategy.status.value != "active" or accounts[strategy.account_id].deleted:
            continue
        if strategy.review_date is not None and strategy.review_date < as_of:
            reason = "review_overdue"
        elif not any(
            links.get(a.id) == strategy.id
            and a.account_id == strategy.account_id
            and not a.deleted
            and stale_start <= a.occurred_at < end
            for a in activities
        ):
            reason = "no_recent_activity"
        else:
            continue
        found.add(
            (
                "stale_strategy",
                reason,
                strategy.account_id,
                strategy.id,
                (),
                None,
                pipeline[strategy.account_id],
            )
        )
    return found


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    ("window_days", "min_activities", "timezone"),
    [(30, 5, "UTC"), (30, 3, "Asia/Tokyo"), (14, 2, "America/New_York")],
)
def test_the_sql_review_matches_the_rule_read_literally(db, seed, window_days, min_activities, timezone):
    build_random_org(db, seed)
    as_of = date(2026, 10, 31)

    review = run_review(db, as_of, window_days=window_days, min_activities=min_activities, timezone=timezone)
    actual = {
        (
            f.rule,
            f.reason,
            f.account_id,
            f.strategy_id,
            tuple(sorted(f.uncovered.items())),
            f.oldest_uncovered_at,
            f.open_pipeline,
        )
        for f in review.findings
    }

    assert actual == expected_findings(db, as_of, window_days, min_activities, 60, timezone)
    assert {f.status for f in review.findings} <= {"new"}
    assert all(f.owner_id == f.account.owner_id for f in review.findings)
    assert all(f.uncovered_total == sum(f.uncovered.values()) for f in review.findings)


def findings_of(review):
    return {
        (f.rule, f.reason, f.status, f.account_id, f.strategy_id, tuple(sorted(f.uncovered.items())))
        + (f.oldest_uncovered_at, f.open_pipeline)
        for f in review.findings
    }


@pytest.mark.parametrize("seed", range(6))
def test_statuses_against_the_previous_review_match_the_rule_on_random_orgs(db, seed):
    build_random_org(db, seed)
    first_day, second_day = date(2026, 10, 24), date(2026, 10, 31)
    first = run_review(db, first_day, min_activities=3)
    db.commit()
    before = expected_findings(db, first_day, 30, 3, 60, "UTC")
    # A week passes: new work lands, some of it linked, and some strategies change status.
    rng = random.Random(seed + 1000)
    accounts = list(db.scalars(select(Account)))
    strategies = list(db.scalars(select(Strategy)))
    for account in rng.sample(accounts, 4):
        for _ in range(rng.randint(1, 4)):
            activity = make_activity(
                db, account=account, occurred_at=utc(2026, 10, 28), kind=rng.choice(KINDS)
            )
            own = [s for s in strategies if s.account_id == account.id]
            if own and rng.random() < 0.5:
                link(db, rng.choice(own), activity)
    for strategy in rng.sample(strategies, min(3, len(strategies))):
        strategy.status = rng.choice(STATUSES)
    db.commit()

    second = run_review(db, second_day, min_activities=3)
    after = expected_findings(db, second_day, 30, 3, 60, "UTC")

    def key(finding):
        return (finding[0], finding[2], finding[3])

    earlier = {key(finding) for finding in before}
    expected = {
        (*finding[:2], "persisting" if key(finding) in earlier else "new", *finding[2:]) for finding in after
    }
    still = {key(finding) for finding in after}
    expected |= {(*finding[:2], "resolved", *finding[2:]) for finding in before if key(finding) not in still}
    assert findings_of(first) == {(*f[:2], "new", *f[2:]) for f in before}
    assert findings_of(second) == expected
    # Open findings come first, then the resolved ones.
    statuses = [f.status for f in second.findings]
    assert statuses == sorted(statuses, key=lambda status: status == "resolved")
