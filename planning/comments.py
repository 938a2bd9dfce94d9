"""Comments on a strategy: its owner, the managers above them and admins may leave remarks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from extensions import DbSession
from planning.access import can_comment_on_account
from planning.models import Strategy, StrategyComment, User, utcnow
from planning.strategies import NotAllowed, StrategyInvalid

MAX_COMMENT_LENGTH = 5_000


def add_comment(session: DbSession, user: User, strategy: Strategy, body: str) -> StrategyComment:
    """Add `user`'s comment to `strategy`; raise StrategyInvalid for an empty or oversized body."""
    if not can_comment_on_account(session, user, strategy.account):
        raise NotAllowed("only the account's owner, their managers and admins may comment")
    text = body.strip() if isinstance(body, str) else ""
    if not text:
        raise StrategyInvalid({"body": "Write something to comment."})
    if "\x00" in text:
        raise StrategyInvalid({"body": "must not contain NUL characters"})
    if len(text) > MAX_COMMENT_LENGTH:
        raise StrategyInvalid({"body": f"must be at most {MAX_COMMENT_LENGTH:,} characters"})
    comment = StrategyComment(strategy_id=strategy.id, author=user, body=text, created_at=utcnow())
    session.add(comment)
    session.flush()
    return comment


def comments_on(session: DbSession, strategy: Strategy) -> list[StrategyComment]:
    """Return the strategy's comments, oldest first, with their authors."""
    return list(
        session.scalars(
            select(StrategyComment)
            .options(joinedload(StrategyComment.author))
            .where(StrategyComment.strategy_id == strategy.id)
            .order_by(StrategyComment.created_at, StrategyComment.id)
        )
    )
