"""The whole OpenAPI document, fuzzed in-process: every generated request gets an answer below 500."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy.orm import Session

from planning.links import link_activities
from planning.models import Role
from planning.strategies import create_strategy
from planning.users import issue_api_token
from tests.factories import make_account, make_activity, make_opportunity, make_user, utc

MIN_REQUESTS = 1000
EXAMPLES_PER_RUN = 40


def _sales_org(db: Session) -> dict[str, Any]:
    """Build a small org the generated requests can hit: ids 1, 2, 3 exist for most records."""
    admin = make_user(db, role=Role.ADMIN)
    vp = make_user(db, role=Role.MANAGER)
    rep = make_user(db, role=Role.REP, manager=vp)
    accounts = [make_account(db, owner=rep) for _ in range(3)]
    opportunity = make_opportunity(db, account=accounts[0], name="Line 2 scheduling")
    activities = [
        make_activity(db, account=accounts[0], occurred_at=utc(2026, 11, day), subject=f"Pilot review {day}")
        for day in range(1, 11)
    ]
    strategy = create_strategy(
        db,
        rep,
        accounts[0],
        {
            "objective": "Their planners schedule line 2 in an hour instead of a day",
            "approach": "Prove the pilot with the planning lead, then take the numbers to the COO",
            "review_date": "2027-01-15",
            "status": "active",
            "opportunity_id": opportunity.id,
        },
    )
    link_activities(db, rep, strategy, [activities[0].id, activities[1].id])
    token = issue_api_token(db, admin)
    db.commit()
    return {
        "token": token,
        "path_parameters": {"account_id": accounts[0].id, "strategy_id": strategy.id, "review_id": 1},
    }


def test_generated_requests_over_the_whole_api_never_get_a_server_error(app: Any, db: Session) -> None:
    org = _sales_org(db)
    headers = {"Authorization": f"Bearer {org['token']}"}
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    def run(strategy: Any) -> None:
        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_RUN,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}")
            assert response.status_code < 500, server_errors[-1]

        # Negative data needs something to break: an operation without parameters has none.
        with contextlib.suppress(Unsatisfiable):
            call()

    for operation in operations:
        run(operation.as_strategy(GenerationMode.POSITIVE))
        run(operation.as_strategy(GenerationMode.NEGATIVE))
        known = {
            name: value for name, value in org["path_parameters"].items() if f"{{{name}}}" in operation.path
        }
        if known:
            run(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))

    total = sum(statuses.values())
    assert server_errors == []
    assert total >= MIN_REQUESTS, statuses
    # The fuzzing reached real successes too, not only validation errors.
    assert statuses[200] + statuses[201] > 100, statuses
