"""Users, passwords and API tokens: find a user by email, check a password, issue and resolve tokens.

The web sign-in, the API's bearer authentication and the `users` CLI commands all call these.
Passwords are stored as werkzeug's salted hashes, API tokens as their SHA-256 only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased
from werkzeug.security import check_password_hash, generate_password_hash

from extensions import DbSession
from planning.models import ApiToken, Role, User

MIN_PASSWORD_LENGTH = 8
# Writing last_used_at on every API call would turn each read into a write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


def normalize_email(email: str) -> str:
    """Return the email as users are matched by it: trimmed and lower-cased."""
    return email.strip().lower()


def find_user_by_email(session: DbSession, email: str) -> User | None:
    """Return the user with this email, compared without case, or None."""
    return session.scalar(select(User).where(func.lower(User.email) == normalize_email(email)))


class UserInvalid(ValueError):
    """The user cannot be created as asked; the message says why."""


def create_user(session: DbSession, email: str, name: str, role: Role, manager: User | None = None) -> User:
    """Add a user who signs in with `email` (no password yet); raise UserInvalid if the email won't do."""
    email = normalize_email(email)
    if "@" not in email:
        raise UserInvalid(f"{email!r} does not look like an email address.")
    if find_user_by_email(session, email) is not None:
        raise UserInvalid(f"A user with the email {email!r} already exists.")
    if manager is not None and manager.role == Role.REP:
        raise UserInvalid(
            f"{manager.email} is a rep; a person's manager must be a manager or an admin "
            "(change their role first)."
        )
    user = User(email=email, name=name.strip(), role=role, manager=manager)
    session.add(user)
    session.flush()
    return user


@dataclass(frozen=True, slots=True)
class UserListing:
    """A user with their manager's email and how many API tokens they hold."""

    user: User
    manager_email: str | None
    tokens: int


def list_users(session: DbSession) -> list[UserListing]:
    """Return every user by role, then name, with their manager and token count, in one query."""
    tokens = (
        select(ApiToken.user_id, func.count(ApiToken.id).label("count")).group_by(ApiToken.user_id).subquery()
    )
    manager = aliased(User)
    rows = session.execute(
        select(User, manager.email, tokens.c.count)
        .outerjoin(manager, manager.id == User.manager_id)
        .outerjoin(tokens, tokens.c.user_id == User.id)
        .order_by(User.role, User.name, User.id)
    )
    return [UserListing(user, manager_email, token_count or 0) for user, manager_email, token_count in rows]


def set_password(user: User, password: str) -> None:
    """Store a salted hash of `password` on `user`."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")
    user.password_hash = generate_password_hash(password)


@cache
def _decoy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def authenticate(session: DbSession, email: str, password: str) -> User | None:
    """Return the active user whose email and password match, or None."""
    user = find_user_by_email(session, email)
    if user is None or not user.active or not user.password_hash:
        # Hash anyway, so the answer takes as long whether or not the email exists.
        check_password_hash(_decoy_hash(), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def hash_token(token: str) -> str:
    """Return the SHA-256 of an API token, the only form in which it is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(session: DbSession, user: User) -> str:
    """Create an API token for `user` and return it; only its SHA-256 is stored."""
    token = secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token)))
    session.flush()
    return token


def user_for_api_token(session: DbSession, token: str, *, now: datetime | None = None) -> User | None:
    """Return the active user a bearer token belongs to, noting when the token was last used."""
    if not token:
        return None
    row = session.execute(
        select(ApiToken.id, ApiToken.last_used_at, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    if row is None or not row.User.active:
        return None
    now = now or datetime.now(UTC)
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_INTERVAL:
        session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
        session.commit()
    user: User = row.User
    return user
