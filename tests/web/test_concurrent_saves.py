"""Twenty saves of one strategy at the same moment on PostgreSQL: one wins, nineteen conflict."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from planning.models import Role, Strategy, StrategyRevision, User
from planning.strategies import StaleVersion, create_strategy, update_strategy
from planning.users import issue_api_token
from tests.factories import make_account, make_user

WRITERS = 20

# Concurrency is what PostgreSQL serves in production; SQLite serializes writers anyway.
pytestmark = pytest.mark.postgres


@pytest.fixture
def strategy_id(db: Session) -> int:
    rep = make_user(db, role=Role.REP, email="rep@example.com")
    account = make_account(db, owner=rep)
    strategy = create_strategy(db, rep, account, {"objective": "Their line 2 runs a second shift"})
    db.commit()
    return strategy.id


def _history(db: Session, strategy_id: int) -> list[StrategyRevision]:
    db.expire_all()
    return list(
        db.scalars(
            select(StrategyRevision)
            .where(StrategyRevision.strategy_id == strategy_id)
            .order_by(StrategyRevision.version)
        )
    )


def test_twenty_concurrent_saves_from_one_version_leave_one_winner(
    postgres: str, db: Session, strategy_id: int
) -> None:
    engine = create_engine(postgres, poolclass=NullPool)
    barrier = threading.Barrier(WRITERS)
    outcomes: dict[int, str] = {}

    def write(writer: int) -> None:
        with Session(engine) as session:
            user = session.scalars(select(User).where(User.email == "rep@example.com")).one()
            strategy = session.get(Strategy, strategy_id)
            assert strategy is not None and strategy.version == 1
            barrier.wait()
            try:
                update_strategy(
                    session, user, strategy, {"objective": f"Objective by writer {writer}"}, version=1
                )
                session.commit()
                outcomes[writer] = "won"
            except StaleVersion as stale:
                session.rollback()
                outcomes[writer] = f"stale at {stale.current_version}"

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()

    winners = [writer for writer, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == WRITERS
    assert len(winners) == 1
    assert sorted(outcome for outcome in outcomes.values() if outcome != "won") == ["stale at 2"] * (
        WRITERS - 1
    )
    history = _history(db, strategy_id)
    assert [revision.version for revision in history] == [1, 2]
    assert history[1].snapshot["objective"] == f"Objective by writer {winners[0]}"
    assert db.get(Strategy, strategy_id).objective == f"Objective by writer {winners[0]}"


def test_twenty_concurrent_api_saves_get_one_200_and_nineteen_409s(
    postgres: str, app: Any, db: Session, strategy_id: int
) -> None:
    rep = db.scalars(select(User).where(User.email == "rep@example.com")).one()
    token = issue_api_token(db, rep)
    db.commit()
    barrier = threading.Barrier(WRITERS)
    answers: dict[int, Any] = {}

    def write(writer: int) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.patch(
            f"/api/strategies/{strategy_id}",
            json={"version": 1, "approach": f"Approach by writer {writer}"},
            headers={"Authorization": f"Bearer {token}"},
        )
        answers[writer] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(status for status, _ in answers.values())
    assert statuses == [200] + [409] * (WRITERS - 1)
    conflicts = [body for status, body in answers.values() if status == 409]
    assert {body["error"]["code"] for body in conflicts} == {"stale_version"}
    assert {body["error"]["detail"]["current_version"] for body in conflicts} == {2}
    [winner] = [writer for writer, (status, _) in answers.items() if status == 200]
    history = _history(db, strategy_id)
    assert [revision.version for revision in history] == [1, 2]
    assert history[1].snapshot["approach"] == f"Approach by writer {winner}"
