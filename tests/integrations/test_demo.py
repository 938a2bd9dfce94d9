"""The demo org: deterministic, believable, lazily generated, and true to what the review should find."""

from __future__ import annotations

import itertools
import tracemalloc
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import config
from integrations.base import (
    STREAMS,
    AccountRecord,
    ActivityRecord,
    OpportunityRecord,
    Record,
    Source,
    StrategyRecord,
    UserRecord,
    validate,
)
from integrations.demo import BATCH_SIZE, WINDOW_DAYS, DemoSource
from integrations.sources import get_source

TODAY = date(2026, 11, 24)


def read_all(source: DemoSource) -> dict[str, list[Record]]:
    return {
        stream: [record for batch in source.read(stream, None, full=True) for record in batch.records]
        for stream in source.streams()
    }


@pytest.fixture(scope="module")
def org() -> dict[str, list[Any]]:
    """The standard org as of TODAY, generated once for the module."""
    return read_all(DemoSource(today=TODAY))


@pytest.fixture(scope="module")
def archetypes() -> dict[str, str]:
    source = DemoSource(today=TODAY)
    return {source.plan(index).external_id: source.plan(index).archetype for index in range(source.accounts)}


def window_start(days: int) -> datetime:
    """The first moment of the review window of `days` whole days ending on TODAY."""
    return datetime.combine(TODAY - timedelta(days=days - 1), time(), UTC)


def uncovered_recent(org: dict[str, list[Any]]) -> tuple[Counter[str], set[str]]:
    """Count, per account, the last 30 days' activities not linked to an active or achieved strategy."""
    covering = {
        activity_id
        for strategy in org["strategies"]
        if strategy.status in ("active", "achieved")
        for activity_id in strategy.activity_external_ids
    }
    counts: Counter[str] = Counter()
    contracts: set[str] = set()
    for activity in org["activities"]:
        if activity.occurred_at >= window_start(30) and activity.external_id not in covering:
            counts[activity.account_external_id] += 1
            if activity.kind == "contract":
                contracts.add(activity.account_external_id)
    return counts, contracts


# Determinism -------------------------------------------------------------------------------------


def test_two_sources_with_the_same_arguments_yield_identical_records() -> None:
    first = read_all(DemoSource(accounts=90, seed=7, today=TODAY))
    second = read_all(DemoSource(accounts=90, seed=7, today=TODAY))
    assert first == second
    assert all(first[stream] for stream in STREAMS)


def test_the_standard_org_is_the_same_on_every_read(org: dict[str, list[Any]]) -> None:
    assert read_all(DemoSource(today=TODAY)) == org


def test_a_different_seed_yields_a_different_org() -> None:
    first = read_all(DemoSource(accounts=90, seed=7, today=TODAY))
    second = read_all(DemoSource(accounts=90, seed=8, today=TODAY))
    for stream in ("users", "accounts", "activities", "strategies"):
        assert first[stream] != second[stream], stream


def test_the_demo_seed_setting_chooses_the_org(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEMO_SEED", "7")
    settings = config.from_environment(str(tmp_path))

    from_settings = read_all(DemoSource.from_config(settings, scale=90, today=TODAY))

    assert from_settings == read_all(DemoSource(accounts=90, seed=7, today=TODAY))


def test_the_demo_scale_setting_sizes_every_sync_of_the_demo_that_gives_no_scale(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `demo --scale 5000` then the scheduler's syncs: without the setting they pulled the standard org in.
    monkeypatch.setenv("DEMO_SCALE", "90")
    settings = config.from_environment(str(tmp_path))

    assert read_all(DemoSource.from_config(settings, today=TODAY)) == read_all(
        DemoSource(accounts=90, today=TODAY)
    )
    assert len(read_all(DemoSource.from_config(settings, scale=40, today=TODAY))["accounts"]) == 40


def test_a_negative_demo_scale_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DEMO_SCALE", "-3")

    with pytest.raises(config.ConfigError, match="DEMO_SCALE must be 0 .* got -3"):
        config.from_environment(str(tmp_path))


def test_a_stream_read_alone_matches_the_same_stream_read_with_the_others(org: dict[str, list[Any]]) -> None:
    alone = DemoSource(today=TODAY)
    records = [record for batch in alone.read("strategies", None, full=True) for record in batch.records]
    assert records == org["strategies"]


# The standard org's shape --------------------------------------------------------------------------


def test_the_standard_org_has_a_vp_three_managers_of_four_reps_each_and_an_admin(
    org: dict[str, list[Any]],
) -> None:
    users: list[UserRecord] = org["users"]
    by_id = {user.external_id: user for user in users}
    vps = [user for user in users if user.role == "manager" and user.manager_external_id is None]
    managers = [user for user in users if user.role == "manager" and user.manager_external_id is not None]
    reps = [user for user in users if user.role == "rep"]
    admins = [user for user in users if user.role == "admin"]
    assert (len(vps), len(managers), len(reps), len(admins)) == (1, 3, 12, 1)
    assert all(manager.manager_external_id == vps[0].external_id for manager in managers)
    assert Counter(rep.manager_external_id for rep in reps) == Counter(
        {manager.external_id: 4 for manager in managers}
    )
    assert all(by_id[rep.manager_external_id or ""].role == "manager" for rep in reps)
    assert [user.external_id for user in users] == [f"DU{number:03d}" for number in range(1, 18)]
    assert len({user.email for user in users}) == len(users)
    assert all(user.email.endswith("@northwind-demo.com") for user in users)


def test_the_standard_org_has_about_300_accounts_of_many_sizes(org: dict[str, list[Any]]) -> None:
    accounts: list[AccountRecord] = org["accounts"]
    assert len(accounts) == 300
    assert len({account.name for account in accounts}) == 300
    assert len({account.industry for account in accounts}) >= 8
    revenues = sorted(account.annual_revenue or 0 for account in accounts)
    median = revenues[len(revenues) // 2]
    # Many small, few large: the biggest dwarfs the median, and most are below the mean.
    assert revenues[-1] > 20 * median
    assert sum(1 for revenue in revenues if revenue < sum(revenues) / len(revenues)) > 200
    assert all(
        account.url == f"https://demo.stratlink.invalid/accounts/{account.external_id}"
        for account in accounts
    )


def test_the_standard_org_has_about_15000_calls_in_both_directions_and_every_kind(
    org: dict[str, list[Any]],
) -> None:
    activities: list[ActivityRecord] = org["activities"]
    kinds = Counter(activity.kind for activity in activities)
    assert 13_000 <= kinds["call"] <= 17_000
    assert set(kinds) == {"call", "email", "meeting", "task", "note", "contract"}
    assert 24 <= kinds["contract"] <= 60
    for kind in ("call", "email"):
        directions = Counter(activity.direction for activity in activities if activity.kind == kind)
        assert directions["inbound"] > 1000 and directions["outbound"] > 1000, kind
    assert any(activity.opportunity_external_id for activity in activities)


def test_activity_volume_varies_by_account(org: dict[str, list[Any]]) -> None:
    per_account = Counter(activity.account_external_id for activity in org["activities"])
    volumes = sorted(per_account[account.external_id] for account in org["accounts"])
    assert volumes[0] <= 10
    assert volumes[-1] >= 300


def test_the_standard_org_has_open_and_closed_opportunities_in_every_stage(org: dict[str, list[Any]]) -> None:
    opportunities: list[OpportunityRecord] = org["opportunities"]
    stages = Counter(opportunity.stage for opportunity in opportunities)
    assert set(stages) == {
        "Prospecting",
        "Qualification",
        "Proposal",
        "Negotiation",
        "Closed Won",
        "Closed Lost",
    }
    for opportunity in opportunities:
        assert opportunity.is_closed == (opportunity.stage in ("Closed Won", "Closed Lost"))
        assert opportunity.is_won == (opportunity.stage == "Closed Won")
        assert opportunity.amount is not None and opportunity.amount > 0
        assert opportunity.close_date is not None
        if opportunity.is_closed:
            assert opportunity.close_date <= TODAY
        else:
            assert opportunity.close_date > TODAY


def test_about_a_third_of_the_accounts_have_a_strategy_mostly_active(org: dict[str, list[Any]]) -> None:
    strategies: list[StrategyRecord] = org["strategies"]
    assert 85 <= len(strategies) <= 115
    assert len({strategy.account_external_id for strategy in strategies}) == len(strategies)
    statuses = Counter(strategy.status for strategy in strategies)
    assert statuses["active"] > len(strategies) * 0.75
    assert {"draft", "achieved", "abandoned"} <= set(statuses)
    for strategy in strategies:
        assert (
            strategy.objective and strategy.customer_view and strategy.approach and strategy.success_measure
        )
        assert strategy.target_date is not None and strategy.review_date is not None


def test_demo_strategies_state_outcomes_rather_than_tactics(org: dict[str, list[Any]]) -> None:
    tactics = pytest.importorskip("planning.tactics")
    for strategy in org["strategies"]:
        assert not tactics.check_tactics(strategy.objective, strategy.approach).reads_like_tactics


def test_every_reference_in_the_standard_org_resolves(org: dict[str, list[Any]]) -> None:
    users = {user.external_id for user in org["users"]}
    accounts = {account.external_id for account in org["accounts"]}
    opportunities = {opportunity.external_id: opportunity for opportunity in org["opportunities"]}
    activities = {activity.external_id: activity for activity in org["activities"]}
    assert len(activities) == len(org["activities"])
    assert all(account.owner_external_id in users for account in org["accounts"])
    for opportunity in org["opportunities"]:
        assert opportunity.account_external_id in accounts and opportunity.owner_external_id in users
    for activity in org["activities"]:
        assert activity.account_external_id in accounts and activity.owner_external_id in users
        if activity.opportunity_external_id is not None:
            deal = opportunities[activity.opportunity_external_id]
            assert deal.account_external_id == activity.account_external_id
    linked: Counter[str] = Counter()
    for strategy in org["strategies"]:
        assert strategy.account_external_id in accounts and strategy.author_external_id in users
        for activity_id in strategy.activity_external_ids:
            assert activities[activity_id].account_external_id == strategy.account_external_id
            linked[activity_id] += 1
    assert linked and max(linked.values()) == 1


def test_every_record_passes_validation(org: dict[str, list[Any]]) -> None:
    for records in org.values():
        for record in records:
            validate(record)


def test_activity_falls_within_the_six_months_before_today(org: dict[str, list[Any]]) -> None:
    # Nothing today: loaded at 04:00, a demo with calls until 22:55 showed calls "in 17 hours".
    earliest = min(activity.occurred_at for activity in org["activities"])
    latest = max(activity.occurred_at for activity in org["activities"])
    assert earliest >= window_start(WINDOW_DAYS + 1)
    assert latest < datetime.combine(TODAY, time(), UTC)
    # Six months really are covered, and the last days are busy.
    assert earliest < window_start(WINDOW_DAYS - 7)
    assert latest >= datetime.combine(TODAY - timedelta(days=1), time(), UTC)


def test_active_deals_carry_more_recent_activity_than_quiet_accounts(org: dict[str, list[Any]]) -> None:
    open_deal_accounts = {
        opportunity.account_external_id for opportunity in org["opportunities"] if not opportunity.is_closed
    }
    recent: Counter[bool] = Counter()
    total: Counter[bool] = Counter()
    for activity in org["activities"]:
        active = activity.account_external_id in open_deal_accounts
        total[active] += 1
        recent[active] += activity.occurred_at >= window_start(60)
    assert recent[True] / total[True] > recent[False] / total[False]


def test_the_dialogue_ratio_differs_by_rep(org: dict[str, list[Any]]) -> None:
    directions: defaultdict[str, Counter[str]] = defaultdict(Counter)
    reps = {user.external_id for user in org["users"] if user.role == "rep"}
    for activity in org["activities"]:
        if activity.owner_external_id in reps:
            directions[activity.owner_external_id][activity.direction] += 1
    ratios = [counts["inbound"] / counts["outbound"] for counts in directions.values()]
    assert len(ratios) == 12
    assert max(ratios) > 2 * min(ratios)


# What the review should find ----------------------------------------------------------------------


def test_busy_accounts_without_a_strategy_pile_up_uncovered_recent_activity(
    org: dict[str, list[Any]], archetypes: dict[str, str]
) -> None:
    counts, _ = uncovered_recent(org)
    with_strategy = {strategy.account_external_id for strategy in org["strategies"]}
    busy = [account for account, archetype in archetypes.items() if archetype == "busy"]
    assert len(busy) == 30
    for account in busy:
        assert account not in with_strategy
        assert counts[account] >= 5


def test_some_strategies_leave_the_recent_activity_unlinked(
    org: dict[str, list[Any]], archetypes: dict[str, str]
) -> None:
    counts, _ = uncovered_recent(org)
    active = {s.account_external_id for s in org["strategies"] if s.status == "active"}
    unlinked = [account for account, archetype in archetypes.items() if archetype == "unlinked"]
    assert unlinked
    for account in unlinked:
        assert account in active and counts[account] >= 5


def test_quiet_accounts_with_a_lone_contract_have_no_strategy(
    org: dict[str, list[Any]], archetypes: dict[str, str]
) -> None:
    counts, contracts = uncovered_recent(org)
    with_strategy = {strategy.account_external_id for strategy in org["strategies"]}
    lone = [account for account, archetype in archetypes.items() if archetype == "lone_contract"]
    assert lone
    for account in lone:
        assert account in contracts and account not in with_strategy
        assert counts[account] < 5


def test_well_covered_accounts_give_the_review_nothing_to_flag(
    org: dict[str, list[Any]], archetypes: dict[str, str]
) -> None:
    counts, contracts = uncovered_recent(org)
    strategies = {strategy.account_external_id: strategy for strategy in org["strategies"]}
    times = {activity.external_id: activity.occurred_at for activity in org["activities"]}
    covered = [account for account, archetype in archetypes.items() if archetype == "covered"]
    assert len(covered) == 50
    for account in covered:
        strategy = strategies[account]
        assert strategy.status == "active"
        assert strategy.review_date is not None and strategy.review_date >= TODAY
        assert counts[account] < 5 and account not in contracts
        assert any(times[linked] >= window_start(60) for linked in strategy.activity_external_ids)


def test_some_active_strategies_are_stale(org: dict[str, list[Any]]) -> None:
    times = {activity.external_id: activity.occurred_at for activity in org["activities"]}
    overdue = quiet = 0
    for strategy in org["strategies"]:
        if strategy.status != "active":
            continue
        if strategy.review_date < TODAY:
            overdue += 1
        elif not any(times[linked] >= window_start(60) for linked in strategy.activity_external_ids):
            quiet += 1
    assert overdue >= 5 and quiet >= 5


# Scale and laziness --------------------------------------------------------------------------------


def test_a_scaled_org_has_about_20_activities_per_account_and_25_accounts_per_rep() -> None:
    source = DemoSource(accounts=1500, today=TODAY)
    users: list[UserRecord] = [
        record for batch in source.read("users", None, full=True) for record in batch.records
    ]
    roles = Counter(user.role for user in users)
    assert roles == Counter({"rep": 60, "manager": 1 + 8, "admin": 1})
    activities = sum(len(batch.records) for batch in source.read("activities", None, full=True))
    assert 15 * 1500 <= activities <= 25 * 1500


def test_reading_the_first_batch_of_a_50000_account_org_generates_only_that_batch() -> None:
    source = DemoSource(accounts=50_000, today=TODAY)
    tracemalloc.start()
    try:
        batches = list(itertools.islice(source.read("activities", None, full=True), 1))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(batches[0].records) == BATCH_SIZE
    assert batches[0].records[-1].account_external_id < "DA001000"
    # 2,000 activities take a few megabytes; a million would take hundreds.
    assert peak < 30 * 1024 * 1024


def test_batches_hold_at_most_2000_records_and_no_cursor() -> None:
    source = DemoSource(accounts=120, today=TODAY)
    batches = list(source.read("activities", None, full=True))
    assert len(batches) > 1
    assert all(len(batch.records) <= BATCH_SIZE and batch.cursor is None for batch in batches)
    assert all(batch.stream == "activities" for batch in batches)


def test_an_unknown_stream_is_refused() -> None:
    with pytest.raises(ValueError, match="no stream"):
        list(DemoSource(accounts=3, today=TODAY).read("contacts", None, full=True))


def test_the_registry_builds_the_standard_or_a_scaled_demo() -> None:
    standard = get_source("demo", {}, today=TODAY)
    scaled = get_source("demo", {}, scale=600, today=TODAY)
    assert isinstance(standard, DemoSource) and isinstance(standard, Source)
    assert isinstance(scaled, DemoSource)
    assert standard.name == "demo" and tuple(standard.streams()) == STREAMS
    assert (standard.accounts, standard.reps, standard.managers) == (300, 12, 3)
    assert (scaled.accounts, scaled.reps, scaled.managers) == (600, 24, 3)


def test_today_defaults_to_the_current_utc_date() -> None:
    assert DemoSource(accounts=1).today == datetime.now(UTC).date()


# Through the sync engine ---------------------------------------------------------------------------


def counts_of(run: Any) -> tuple[int, int, int, int]:
    return run.inserted, run.updated, run.unchanged, run.failed


def test_the_standard_org_loads_through_the_sync_engine_and_a_second_run_changes_nothing(
    db: Any, org: dict[str, list[Any]]
) -> None:
    from integrations.sync import run_sync
    from planning.models import Account, Activity, Link, Strategy, User

    first = run_sync(db, DemoSource(today=TODAY))
    assert first.status == "succeeded", first.errors[:5]
    assert first.failed == 0
    total = sum(len(records) for records in org.values())
    assert first.inserted == total

    assert db.scalar(select(Account.id).where(Account.source == "demo").limit(1)) is not None
    assert len(db.scalars(select(Activity.id)).all()) == len(org["activities"])
    assert len(db.scalars(select(Strategy.id)).all()) == len(org["strategies"])
    links = sum(len(strategy.activity_external_ids) for strategy in org["strategies"])
    assert len(db.scalars(select(Link.activity_id)).all()) == links
    vp = db.scalar(select(User).where(User.email == org["users"][0].email))
    assert vp.role == "manager" and vp.manager_id is None

    second = run_sync(db, DemoSource(today=TODAY))
    assert second.status == "succeeded"
    assert counts_of(second) == (0, 0, total, 0)


def test_the_review_flags_the_accounts_the_demo_means_it_to(db: Any, archetypes: dict[str, str]) -> None:
    from integrations.sync import run_sync
    from planning.models import Account

    review_module = pytest.importorskip("planning.review")
    run = run_sync(db, DemoSource(accounts=60, today=TODAY))
    assert run.failed == 0
    review = review_module.run_review(db, TODAY)
    external_ids = {row.id: row.external_id for row in db.execute(select(Account.id, Account.external_id))}
    found: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
    for finding in review.findings:
        found[archetypes[external_ids[finding.account_id]]].add((finding.rule, finding.reason))
    assert found["busy"] == {("tactics_without_strategy", "no_strategy")}
    assert found["lone_contract"] == {("tactics_without_strategy", "no_strategy")}
    assert ("tactics_without_strategy", "unlinked") in found["unlinked"]
    assert found["overdue"] == {("stale_strategy", "review_overdue")}
    assert found["stale"] == {("stale_strategy", "no_recent_activity")}
    assert "covered" not in found
    busy_flagged = {
        finding.account_id
        for finding in review.findings
        if archetypes[external_ids[finding.account_id]] == "busy"
    }
    assert len(busy_flagged) == 6
