"""The review digest: each manager gets their team's findings, each rep their own, by email.

Who gets what:
- a manager gets the findings on their team's accounts (the VP: every account), new ones first;
- a rep gets the findings on their own accounts;
- admins and inactive users get none, and nobody gets an email whose findings are all resolved
  (nothing to act on) or who has no finding at all.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from functools import partial
from typing import Any

from flask import render_template
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from extensions import DbSession
from planning.access import visible_owner_ids
from planning.describe import RULE_TITLES, describe_finding, money
from planning.findings import count_by_status, findings_for_owners, has_open_findings, new_first
from planning.models import DigestDelivery, Finding, Review, Role, User, utcnow


@dataclass
class Digest:
    """One email to write: who it is for, and the findings it reports."""

    recipient: User
    findings: list[Finding]
    team: bool

    @property
    def counts(self) -> dict[str, int]:
        return count_by_status(self.findings)


def build_digests(session: DbSession, review: Review) -> list[Digest]:
    """Decide who gets a digest of `review` and with which findings.

    The findings are read once and filed by owner, so each recipient's are gathered from their owners'
    files instead of a pass over every finding (with 2,000 reps and 17,000 findings that pass took 11 s).
    """
    everything = findings_for_owners(session, review, None)
    if not has_open_findings(everything):
        return []
    position = {finding.id: index for index, finding in enumerate(everything)}
    by_owner: dict[int | None, list[Finding]] = {}
    for finding in everything:
        by_owner.setdefault(finding.owner_id, []).append(finding)
    recipients = session.scalars(
        select(User)
        .where(User.active.is_(True), User.role.in_((Role.MANAGER, Role.REP)))
        .order_by(User.role, User.name, User.id)
    )
    digests = []
    for user in recipients:
        owners = visible_owner_ids(session, user)
        if owners is None:
            mine = everything
        else:
            mine = [finding for owner in owners for finding in by_owner.get(owner, ())]
            mine.sort(key=lambda finding: position[finding.id])  # back into display order
        if has_open_findings(mine):
            digests.append(Digest(user, new_first(mine), team=user.role == Role.MANAGER))
    return digests


def subject_for(digest: Digest, review: Review) -> str:
    """Write the subject line: the date, the counts (in the words of the email: "still open", not
    "persisting"), and whose accounts."""
    counts = digest.counts
    whose = "your team" if digest.team else "your accounts"
    parts = [f"{counts['new']:,} new", f"{counts['persisting']:,} still open"]
    if counts["resolved"]:
        parts.append(f"{counts['resolved']:,} resolved")
    return f"Tactics review {review.as_of.isoformat()}: {', '.join(parts)} for {whose}"


SECTION_TITLES = {
    "new": "New this review",
    "persisting": "Still open",
    "resolved": "Resolved since the last review",
}


DEFAULT_MAX_FINDINGS = 100


def render_digest(
    digest: Digest, review: Review, base_url: str, max_findings: int = DEFAULT_MAX_FINDINGS
) -> tuple[str, str]:
    """Render the plain-text and HTML bodies of one digest (needs an app context).

    The email lists the first `max_findings` findings (new ones first); each section still gives its
    whole count and says how many more the review page holds, so a VP's digest of a large org stays an
    email (17,000 findings made 15 MB) rather than a copy of the review.
    """
    base = base_url.rstrip("/")
    listed = digest.findings[: max(max_findings, 0)]
    counts = digest.counts
    sections = []
    for status, title in SECTION_TITLES.items():
        rows = [
            {
                "finding": finding,
                "rule": RULE_TITLES.get(finding.rule, finding.rule),
                "words": describe_finding(
                    finding, window_days=review.window_days, stale_days=review.stale_days
                ),
                "account_url": f"{base}/accounts/{finding.account_id}",
                "pipeline": money(finding.open_pipeline),
                "owner": finding.owner.name if finding.owner is not None else "No owner",
            }
            for finding in listed
            if finding.status == status
        ]
        if counts[status]:
            sections.append(
                {
                    "status": status,
                    "title": title,
                    "count": counts[status],
                    "rows": rows,
                    "more": counts[status] - len(rows),
                }
            )
    context: dict[str, Any] = {
        "digest": digest,
        "review": review,
        "sections": sections,
        "counts": counts,
        "review_url": f"{base}/reviews/{review.id}",
        "subject": subject_for(digest, review),
    }
    return render_template("email/digest.txt", **context), render_template("email/digest.html", **context)


def compose(digest: Digest, review: Review, config: Mapping[str, Any]) -> EmailMessage:
    """Build the multipart/alternative message of one digest."""
    text, html = render_digest(
        digest,
        review,
        config.get("STRATLINK_BASE_URL") or "http://127.0.0.1:5000",
        int(config.get("DIGEST_MAX_FINDINGS", DEFAULT_MAX_FINDINGS)),
    )
    message = EmailMessage()
    message["Subject"] = subject_for(digest, review)
    message["From"] = config.get("MAIL_FROM") or "StratLink <stratlink@localhost>"
    message["To"] = formataddr((digest.recipient.name, digest.recipient.email))
    # RFC 5322 requires a Date; smtplib adds none, and clients then show the time it was read, or none.
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain="stratlink.invalid")
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


SmtpFactory = Callable[[Mapping[str, Any]], smtplib.SMTP]
# A claim this old and still unconfirmed is no longer on its way: each SMTP exchange times out in 30 s.
UNCONFIRMED_AFTER = timedelta(minutes=2)


class DigestNotSent(RuntimeError):
    """The SMTP server could not be reached or refused the digest; the message names the server."""


def connect_smtp(config: Mapping[str, Any]) -> smtplib.SMTP:
    """Open an SMTP connection from the SMTP_* settings (STARTTLS and login when configured)."""
    connection = smtplib.SMTP(
        config.get("SMTP_HOST") or "127.0.0.1", int(config.get("SMTP_PORT") or 25), timeout=30
    )
    try:
        if config.get("SMTP_STARTTLS"):
            connection.starttls()
        if config.get("SMTP_USERNAME"):
            connection.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or "")
    except BaseException:
        connection.close()
        raise
    return connection


def send_digests(
    session: DbSession,
    review: Review,
    config: Mapping[str, Any],
    *,
    smtp_factory: SmtpFactory = connect_smtp,
) -> list[Digest]:
    """Email each recipient their digest of `review` over one SMTP connection; return what this call sent.

    A review's digest goes out once to each recipient, even when it is asked for again (a second run of
    the review for the same day) or by two senders at once: each recipient's email is claimed in
    `digest_deliveries`, and committed, just before it is handed to the SMTP server, and whoever finds
    a claim skips that recipient. When the server fails, the claim of the email it refused is dropped and
    DigestNotSent says how many went out; sending again reaches the others. Once the server has taken an
    email its claim is marked accepted (see `unconfirmed_deliveries`). Once everyone has theirs,
    `review.digest_sent_at` is set. Commits as it goes.
    """
    if review.digest_sent_at is not None:
        return []
    review_id = review.id
    delivered = set(
        session.scalars(select(DigestDelivery.user_id).where(DigestDelivery.review_id == review_id))
    )
    everyone = build_digests(session, review)
    if not everyone:
        return []  # nothing to report: a later run of the review for this day may still have something
    digests = [digest for digest in everyone if digest.recipient.id not in delivered]
    sent = _deliver(
        session, review, config, digests, partial(_claim, session), partial(_release, session), smtp_factory
    )
    session.execute(
        update(Review)
        .where(Review.id == review_id, Review.digest_sent_at.is_(None))
        .values(digest_sent_at=utcnow())
    )
    session.commit()
    return sent


@dataclass(frozen=True)
class Unconfirmed:
    """A recipient claimed for a review's digest whose email the SMTP server never confirmed taking."""

    user_id: int
    email: str
    claimed_at: datetime


def unconfirmed_deliveries(
    session: DbSession, review: Review, *, settled: timedelta = UNCONFIRMED_AFTER
) -> list[Unconfirmed]:
    """Return the recipients of `review`'s digest claimed at least `settled` ago and never confirmed: their
    sender stopped (killed, crashed) while handing the email over, and whether it went out is unknown.

    A younger claim may still be on its way to the SMTP server, so it is left out.
    """
    rows = session.execute(
        select(DigestDelivery.user_id, User.email, DigestDelivery.sent_at)
        .join(User, User.id == DigestDelivery.user_id)
        .where(
            DigestDelivery.review_id == review.id,
            DigestDelivery.accepted_at.is_(None),
            DigestDelivery.sent_at <= utcnow() - settled,
        )
        .order_by(User.email)
    )
    return [Unconfirmed(user_id, email, claimed_at) for user_id, email, claimed_at in rows]


def resend_unconfirmed(
    session: DbSession,
    review: Review,
    config: Mapping[str, Any],
    *,
    smtp_factory: SmtpFactory = connect_smtp,
    settled: timedelta = UNCONFIRMED_AFTER,
) -> list[Digest]:
    """Email again the recipients `unconfirmed_deliveries` names; return the digests sent.

    They may get the email twice: the person asking chose that over not at all. Each claim is taken over
    by one conditional update, so two of these at once still send each email once.
    """
    claimed = {
        row.user_id: row.claimed_at for row in unconfirmed_deliveries(session, review, settled=settled)
    }
    if not claimed:
        return []
    digests = [digest for digest in build_digests(session, review) if digest.recipient.id in claimed]

    def reclaim(review_id: int, user_id: int) -> bool:
        taken = session.execute(
            update(DigestDelivery)
            .where(
                DigestDelivery.review_id == review_id,
                DigestDelivery.user_id == user_id,
                DigestDelivery.accepted_at.is_(None),
                DigestDelivery.sent_at == claimed[user_id],
            )
            .values(sent_at=utcnow())
        )
        session.commit()
        return bool(taken.rowcount)  # type: ignore[attr-defined]

    # An email the server refuses keeps its unconfirmed claim, to be sent again later: dropping it would
    # leave the recipient to the plain send, which stops at a digest marked sent.
    return _deliver(
        session, review, config, digests, reclaim, lambda _review_id, _user_id: None, smtp_factory
    )


def _deliver(
    session: DbSession,
    review: Review,
    config: Mapping[str, Any],
    digests: list[Digest],
    claim: Callable[[int, int], bool],
    refused: Callable[[int, int], None],
    smtp_factory: SmtpFactory,
) -> list[Digest]:
    """Send `digests` over one SMTP connection, each once `claim(review_id, user_id)` says it is ours;
    mark each accepted once the server takes it, and call `refused(review_id, user_id)` for one it
    does not."""
    review_id, day = review.id, review.as_of.isoformat()
    # Composed before the first claim: a claim lost to another sender rolls the session back.
    outbox = [(digest, digest.recipient.id, compose(digest, review, config)) for digest in digests]
    sent: list[Digest] = []
    if not outbox:
        return sent
    try:
        with smtp_factory(config) as connection:
            for digest, user_id, message in outbox:
                if not claim(review_id, user_id):
                    continue  # another sender has it
                try:
                    connection.send_message(message)
                except BaseException:
                    refused(review_id, user_id)
                    raise
                _accepted(session, review_id, user_id)
                sent.append(digest)
    except (OSError, smtplib.SMTPException) as error:
        # Name the server: "Connection refused" alone does not say which setting to fix.
        server = f"{config.get('SMTP_HOST')}:{config.get('SMTP_PORT')}"
        raise DigestNotSent(
            f"could not send the digest through {server}: {error} ({len(sent)} of {len(outbox)} "
            f"sent; `flask --app app digest --as-of {day}` sends the rest)"
        ) from error
    return sent


def _claim(session: DbSession, review_id: int, user_id: int) -> bool:
    """Record that `user_id` is being sent the review's digest; False when someone already did."""
    session.add(DigestDelivery(review_id=review_id, user_id=user_id, sent_at=utcnow()))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def _release(session: DbSession, review_id: int, user_id: int) -> None:
    """Drop the claim of an email the SMTP server did not take."""
    session.execute(
        delete(DigestDelivery).where(DigestDelivery.review_id == review_id, DigestDelivery.user_id == user_id)
    )
    session.commit()


def _accepted(session: DbSession, review_id: int, user_id: int) -> None:
    """Record that the SMTP server took the email of this claim."""
    session.execute(
        update(DigestDelivery)
        .where(DigestDelivery.review_id == review_id, DigestDelivery.user_id == user_id)
        .values(accepted_at=utcnow())
    )
    session.commit()
