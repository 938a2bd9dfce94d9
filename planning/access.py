"""Who may see and change what: the one place pages, the API, jobs and the CLI ask.

- A rep sees and writes on the accounts they own.
- A manager sees the accounts of everyone below them in the manager hierarchy (and their own);
  a manager with no manager above them (the VP) sees every account. Managers may comment, not write.
- An admin sees everything and may write everywhere (to fix data on behalf of a rep).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import aliased

from extensions import DbSession
from planning.models import Account, Role, User


def sees_everything(user: User) -> bool:
    """Tell whether `user` sees every account (an admin, or the VP at the top of the hierarchy)."""
    return user.role == Role.ADMIN or (user.role == Role.MANAGER and user.manager_id is None)


def team_ids(session: DbSession, manager: User) -> set[int]:
    """Return the ids of `manager` and everyone below them, at any depth."""
    tree = select(User.id).where(User.id == manager.id).cte("team", recursive=True)
    member = aliased(User)
    tree = tree.union(select(member.id).where(member.manager_id == tree.c.id))
    return set(session.scalars(select(tree.c.id)))


def visible_owner_ids(session: DbSession, user: User) -> set[int] | None:
    """Return the owner ids whose accounts `user` may see, or None when they see every account."""
    if sees_everything(user):
        return None
    if user.role == Role.MANAGER:
        return team_ids(session, user)
    return {user.id}


def scope_accounts(statement: Select[Any], session: DbSession, user: User) -> Select[Any]:
    """Narrow a statement over `Account` to the accounts `user` may see."""
    owners = visible_owner_ids(session, user)
    if owners is None:
        return statement
    return statement.where(Account.owner_id.in_(owners))


def can_view_account(session: DbSession, user: User, account: Account) -> bool:
    """Tell whether `user` may open `account`."""
    owners = visible_owner_ids(session, user)
    return owners is None or account.owner_id in owners


def can_edit_account(user: User, account: Account) -> bool:
    """Tell whether `user` may write strategies and links on `account`."""
    return user.role == Role.ADMIN or (account.owner_id is not None and account.owner_id == user.id)


def can_comment_on_account(session: DbSession, user: User, account: Account) -> bool:
    """Tell whether `user` may comment on `account`'s strategies (its owner, their managers, admins)."""
    return can_view_account(session, user, account)
