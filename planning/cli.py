"""`flask --app app review [--as-of YYYY-MM-DD] [--send-digest]`: run the tactics review now;
`flask --app app digest [--as-of YYYY-MM-DD]`: email a stored review's digest;
`flask --app app delete-review --as-of YYYY-MM-DD`: take back a review run for the wrong day."""

from __future__ import annotations

from datetime import date
from typing import Any

import click
from click.core import ParameterSource
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from extensions import db, needs_current_schema
from planning.describe import describe_finding, money
from planning.findings import findings_for_owners, latest_review, review_as_of, status_counts
from planning.models import Review
from planning.review import (
    EARLIEST_AS_OF,
    LATEST_AS_OF,
    ReviewParameterError,
    delete_review,
    run_review_from_config,
)

ACCOUNT_WIDTH = 36
OWNER_WIDTH = 20
DEFAULT_LIMIT = 50  # findings printed; a large org has thousands


class IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        text = str(value).strip()
        try:
            if len(text) != 10:
                raise ValueError(text)
            day = date.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-10-31", param, ctx)
        if not EARLIEST_AS_OF <= day <= LATEST_AS_OF:
            self.fail(f"{text} is out of range ({EARLIEST_AS_OF.isoformat()} to {LATEST_AS_OF.isoformat()})")
        return day


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summary_lines(review: Review, limit: int | None = DEFAULT_LIMIT, base_url: str = "") -> list[str]:
    """Render a review as a readable table, one line per finding, the first `limit` ones (None: all);
    `base_url` is the app's public address, for the link to the review page."""
    counts = status_counts(db.session, review)
    total = sum(counts.values())
    lines = [
        f"Tactics review {review.id} as of {review.as_of.isoformat()} — window {review.window_days} days, "
        f"threshold {review.min_activities}, stale after {review.stale_days} days, {review.timezone}",
        f"{total:,} finding{'' if total == 1 else 's'}: {counts['new']:,} new, "
        f"{counts['persisting']:,} persisting, {counts['resolved']:,} resolved",
    ]
    if not total:
        lines.append("Nothing piled up: every account's recent activity has a strategy behind it.")
        return lines
    lines.append("")
    header = (
        f"{'status':<10}  {'account':<{ACCOUNT_WIDTH}}  {'owner':<{OWNER_WIDTH}}  {'pipeline':>9}  "
        "what the review found"
    )
    lines += [header, "-" * len(header)]
    findings = findings_for_owners(db.session, review, None, limit=limit)
    for finding in findings:
        account = _clip(f"{finding.account.name} ({finding.account.external_id})", ACCOUNT_WIDTH)
        owner = _clip(finding.owner.name if finding.owner else "no owner", OWNER_WIDTH)
        words = describe_finding(finding, window_days=review.window_days, stale_days=review.stale_days)
        lines.append(
            f"{finding.status:<10}  {account:<{ACCOUNT_WIDTH}}  {owner:<{OWNER_WIDTH}}  "
            f"{money(finding.open_pipeline):>9}  {words}"
        )
    if total > len(findings):
        lines.append(
            f"… and {total - len(findings):,} more: `--all` prints every one, and the review page "
            f"({base_url.rstrip('/')}/reviews/{review.id}) shows them by team."
        )
    return lines


@click.command("review")
@click.option(
    "--as-of", "as_of", type=IsoDate(), default=None, help="Review as of this day (default: today)."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Print this many findings, the most pressing first.",
)
@click.option("--all", "print_all", is_flag=True, help="Print every finding.")
@click.option("--send-digest", is_flag=True, help="Email the digest of this review afterwards.")
@with_appcontext
@needs_current_schema
def review_command(as_of: date | None, limit: int, print_all: bool, send_digest: bool) -> None:
    """Run the tactics review, store it (replacing one for the same day) and print its findings."""
    if print_all and click.get_current_context().get_parameter_source("limit") is not ParameterSource.DEFAULT:
        raise click.UsageError("--limit and --all do not go together: --all prints every finding")
    config = current_app.config
    try:
        review = run_review_from_config(db.session, config, as_of=as_of)
    except ReviewParameterError as error:
        # The error names the culprit: a day after today, or a REVIEW_* setting out of range.
        raise click.ClickException(f"cannot run the review: {error}") from error
    db.session.commit()
    for line in summary_lines(review, None if print_all else limit, config.get("STRATLINK_BASE_URL") or ""):
        click.echo(line)
    if send_digest:
        click.echo("")
        _send_digest(review)


@click.command("digest")
@click.option(
    "--as-of", "as_of", type=IsoDate(), default=None, help="The review as of this day (default: the latest)."
)
@click.option(
    "--resend-unconfirmed",
    is_flag=True,
    help="Also email again those whose email the SMTP server never confirmed taking (a stopped sender).",
)
@with_appcontext
@needs_current_schema
def digest_command(as_of: date | None, resend_unconfirmed: bool) -> None:
    """Email the digest of a stored review to the people it has not reached yet; the review is not run
    again."""
    if as_of is None:
        review = latest_review(db.session)
        if review is None:
            raise click.ClickException("no review has run yet: `flask --app app review` runs one")
    else:
        review = review_as_of(db.session, as_of)
        if review is None:
            raise click.ClickException(
                f"no review as of {as_of.isoformat()}: `flask --app app review --as-of {as_of.isoformat()}` "
                "runs one"
            )
        latest = latest_review(db.session)
        if latest is not None and latest.as_of > review.as_of:
            click.echo(
                f"Note: this is not the latest review (that is as of {latest.as_of.isoformat()}); its digest "
                f"tells people what stood on {as_of.isoformat()}."
            )
    _send_digest(review, resend=resend_unconfirmed)


@click.command("delete-review")
@click.option("--as-of", "as_of", type=IsoDate(), required=True, help="The day of the review to delete.")
@click.option("--yes", is_flag=True, help="Delete without asking.")
@with_appcontext
@needs_current_schema
def delete_review_command(as_of: date, yes: bool) -> None:
    """Delete a stored review (one run for the wrong day), with its findings and digest records."""
    day = as_of.isoformat()
    review = review_as_of(db.session, as_of)
    if review is None:
        raise click.ClickException(f"no review as of {day}")
    findings = sum(status_counts(db.session, review).values())
    later = db.session.scalar(select(func.count()).select_from(Review).where(Review.as_of > as_of)) or 0
    if not yes:
        click.confirm(
            f"Delete the review as of {day} and its {findings:,} finding{'' if findings == 1 else 's'}?",
            abort=True,
        )
    delete_review(db.session, review)
    db.session.commit()
    click.echo(f"Deleted the review as of {day} and its {findings:,} finding{'' if findings == 1 else 's'}.")
    if later:
        click.echo(
            f"{later} later review{'s keep' if later != 1 else ' keeps'} the new/persisting/resolved "
            "statuses given against it; `flask --app app review --as-of DAY` runs one again against the "
            "review before it."
        )


def _send_digest(review: Review, *, resend: bool = False) -> None:
    """Email the digest of `review` to whoever it has not reached (and, with `resend`, again to whoever a
    stopped sender may not have reached), and say what happened."""
    from planning.digest import (
        UNCONFIRMED_AFTER,
        DigestNotSent,
        resend_unconfirmed,
        send_digests,
        unconfirmed_deliveries,
    )

    config = current_app.config
    day = review.as_of.isoformat()
    try:
        if review.digest_sent_at is not None:
            click.echo(
                f"No digest sent: the digest of the review as of {day} already went out "
                f"({review.digest_sent_at:%Y-%m-%d %H:%M} UTC)."
            )
        else:
            sent = send_digests(db.session, review, config)
            if sent:
                click.echo(
                    f"Digest of the review as of {day} sent to {len(sent)}: "
                    + ", ".join(digest.recipient.email for digest in sent)
                )
            else:
                click.echo(f"No digest sent for the review as of {day}: nothing to report.")
        if resend:
            again = resend_unconfirmed(db.session, review, config)
            click.echo(
                f"Sent again to {len(again)}: " + ", ".join(digest.recipient.email for digest in again)
                if again
                else "No unconfirmed email to send again."
            )
    except DigestNotSent as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    unsure = unconfirmed_deliveries(db.session, review)
    if unsure:
        minutes = int(UNCONFIRMED_AFTER.total_seconds() // 60)
        click.echo(
            f"Not confirmed: the email to {', '.join(row.email for row in unsure)} was being handed to the "
            "SMTP server when its sender stopped, and may not have gone out. "
            f"`flask --app app digest --as-of {day} --resend-unconfirmed` sends it again (an email claimed "
            f"less than {minutes} minutes ago may still be on its way and is left alone)."
        )


def init_app(app: Flask) -> None:
    """Register the review and digest commands."""
    app.cli.add_command(review_command)
    app.cli.add_command(digest_command)
    app.cli.add_command(delete_review_command)
