"""The review digest, delivered to a real local SMTP server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import insert, select, update

from extensions import db as extension
from planning.digest import (
    Digest,
    DigestNotSent,
    build_digests,
    connect_smtp,
    render_digest,
    resend_unconfirmed,
    send_digests,
    subject_for,
    unconfirmed_deliveries,
)
from planning.models import Activity, DigestDelivery, Finding, Review, User
from planning.review import run_review
from tests.factories import link, make_account, make_activity, make_opportunity, make_strategy, make_user, utc

BASE = "https://stratlink.example.com"


@pytest.fixture
def org(db):
    """A VP, two managers with their reps, and an admin."""
    vp = make_user(db, role="manager", name="Vera VP", email="vera@example.com")
    east = make_user(db, role="manager", manager=vp, name="Emma East", email="emma@example.com")
    west = make_user(db, role="manager", manager=vp, name="Walt West", email="walt@example.com")
    rita = make_user(db, manager=east, name="Rita Rep", email="rita@example.com")
    ravi = make_user(db, manager=east, name="Ravi Rep", email="ravi@example.com")
    wes = make_user(db, manager=west, name="Wes Rep", email="wes@example.com")
    admin = make_user(db, role="admin", name="Ada Admin", email="ada@example.com")
    return {"vp": vp, "east": east, "west": west, "rita": rita, "ravi": ravi, "wes": wes, "admin": admin}


def busy(db, account, count=5, at=None):
    for _ in range(count):
        make_activity(db, account=account, occurred_at=at or utc(2026, 10, 20))


def review(db, as_of=date(2026, 10, 31)):
    result = run_review(db, as_of, window_days=30, min_activities=5, stale_days=60)
    db.commit()
    return result


def test_managers_get_their_team_new_first_and_reps_only_their_own(db, org, smtp_server, app):
    ravis = make_account(db, name="Lone Contract Co", owner=org["ravi"])
    make_activity(db, account=ravis, kind="contract", occurred_at=utc(2026, 10, 5))
    review(db, as_of=date(2026, 10, 24))
    ritas = make_account(db, name="Busy Inc", owner=org["rita"])
    busy(db, ritas, 7)
    make_activity(db, account=ritas, kind="email", occurred_at=utc(2026, 10, 22))
    make_opportunity(db, account=ritas, amount=45000)
    weekly = review(db)

    sent = send_digests(db, weekly, app.config)

    assert sorted(d.recipient.email for d in sent) == [
        "emma@example.com",
        "ravi@example.com",
        "rita@example.com",
        "vera@example.com",
    ]
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == [
        "emma@example.com",
        "ravi@example.com",
        "rita@example.com",
        "vera@example.com",
    ]
    [to_emma] = smtp_server.to("emma@example.com")
    assert to_emma.message["Subject"] == "Tactics review 2026-10-31: 1 new, 1 still open for your team"
    assert to_emma.message["From"] == "StratLink <review@stratlink.test>"
    assert to_emma.message.get_content_type() == "multipart/alternative"
    for content_type in ("text/plain", "text/html"):
        body = to_emma.part(content_type)
        # Rita's account is new, Ravi's persisting: new ones come first.
        assert body.index("Busy Inc") < body.index("Lone Contract Co")
        assert f"{BASE}/accounts/{ritas.id}" in body
        assert f"{BASE}/accounts/{ravis.id}" in body
        assert f"{BASE}/reviews/{weekly.id}" in body
    assert "7 calls and an email in 30 days — no strategy" in to_emma.part("text/plain")
    assert "$45,000" in to_emma.part("text/plain")

    [to_rita] = smtp_server.to("rita@example.com")
    assert to_rita.message["Subject"] == "Tactics review 2026-10-31: 1 new, 0 still open for your accounts"
    for content_type in ("text/plain", "text/html"):
        assert f"{BASE}/accounts/{ritas.id}" in to_rita.part(content_type)
        assert "Lone Contract" not in to_rita.part(content_type)
        assert f"/accounts/{ravis.id}" not in to_rita.part(content_type)
    [to_ravi] = smtp_server.to("ravi@example.com")
    assert "Busy Inc" not in to_ravi.part("text/plain")
    assert "A contract in 30 days — no strategy" in to_ravi.part("text/plain")


def test_a_digest_carries_the_date_it_was_sent(db, org, smtp_server, app):
    busy(db, make_account(db, name="Busy Inc", owner=org["rita"]))
    before = datetime.now(UTC).replace(microsecond=0)

    send_digests(db, review(db), app.config)
    [to_rita] = smtp_server.to("rita@example.com")
    sent_at = parsedate_to_datetime(to_rita.message["Date"])
    assert before <= sent_at <= datetime.now(UTC)


def test_nothing_is_sent_when_there_is_nothing_to_report(db, org, smtp_server, app):
    covered = make_account(db, name="Covered", owner=org["rita"])
    strategy = make_strategy(db, account=covered)
    activity = make_activity(db, account=covered, occurred_at=utc(2026, 10, 20))
    link(db, strategy, activity)

    assert send_digests(db, review(db), app.config) == []
    assert smtp_server.messages == []


def test_a_review_with_only_resolved_findings_sends_nothing(db, org, smtp_server, app):
    fixed = make_account(db, name="Fixed", owner=org["wes"])
    busy(db, fixed, 5, at=utc(2026, 9, 20))
    review(db, as_of=date(2026, 9, 30))
    resolved_only = review(db, as_of=date(2026, 11, 30))

    assert [f.status for f in resolved_only.findings] == ["resolved"]
    assert send_digests(db, resolved_only, app.config) == []
    assert smtp_server.messages == []


def test_admins_and_inactive_users_get_no_digest(db, org):
    gone = make_user(db, manager=org["west"], name="Gone Rep", email="gone@example.com", active=False)
    busy(db, make_account(db, name="Orphaned", owner=gone))

    recipients = {d.recipient.email for d in build_digests(db, review(db))}
    assert recipients == {"vera@example.com", "walt@example.com"}


def test_account_names_are_escaped_in_the_html_part(db, org, smtp_server, app):
    busy(db, make_account(db, name="<b>Bold</b> & Co", owner=org["wes"]))

    send_digests(db, review(db), app.config)
    [to_wes] = smtp_server.to("wes@example.com")
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in to_wes.part("text/html")
    assert "<b>Bold</b> & Co" in to_wes.part("text/plain")


def test_both_parts_say_what_the_review_flags_stale_strategies_included(db, org, smtp_server, app):
    make_strategy(
        db, account=make_account(db, name="Quiet Plan", owner=org["wes"]), review_date=date(2026, 9, 1)
    )

    send_digests(db, review(db), app.config)
    [to_wes] = smtp_server.to("wes@example.com")
    for content_type in ("text/plain", "text/html"):
        body = " ".join(to_wes.part(content_type).split())
        assert "Strategy review overdue (due 2026-09-01)" in body
        assert "5 or more activities in the last 30 days that no strategy covers" in body
        assert "active strategies past their review date or with no linked activity in 60 days" in body


def test_the_review_command_sends_the_digest_when_asked(db, org, smtp_server, app):
    busy(db, make_account(db, name="Westward", owner=org["wes"]))
    db.commit()

    result = app.test_cli_runner().invoke(args=["review", "--as-of", "2026-10-31", "--send-digest"])

    assert result.exit_code == 0, result.output
    assert (
        "Digest of the review as of 2026-10-31 sent to 3: vera@example.com, walt@example.com, wes@example.com"
        in result.output
    )
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == [
        "vera@example.com",
        "walt@example.com",
        "wes@example.com",
    ]


def test_the_review_command_reports_an_unreachable_smtp_server(db, org, app):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=9)
    busy(db, make_account(db, name="Westward", owner=org["wes"]))
    db.commit()

    result = app.test_cli_runner().invoke(args=["review", "--as-of", "2026-10-31", "--send-digest"])

    assert result.exit_code == 1
    assert "could not send the digest through 127.0.0.1:9" in result.output
    assert "Westward" in result.output  # the review itself ran and was printed


def test_a_long_digest_lists_the_first_findings_and_counts_the_rest(db, org, smtp_server, app):
    app.config["DIGEST_MAX_FINDINGS"] = 2
    busy(db, make_account(db, name="Fifth Avenue", owner=org["ravi"]), 5)
    review(db, as_of=date(2026, 10, 24))
    for name, count in (("Sixpence", 6), ("Ninepins", 9), ("Sevenoaks", 7)):
        busy(db, make_account(db, name=name, owner=org["rita"]), count)
    weekly = review(db)

    send_digests(db, weekly, app.config)

    [to_emma] = smtp_server.to("emma@example.com")
    assert to_emma.message["Subject"] == "Tactics review 2026-10-31: 3 new, 1 still open for your team"
    text, html = to_emma.part("text/plain"), to_emma.part("text/html")
    for body in (text, html):
        assert "New this review (3)" in body
        assert "Still open (1)" in body
        assert body.index("Ninepins") < body.index("Sevenoaks")  # the most uncovered first
        assert "Sixpence" not in body
        assert "Fifth Avenue" not in body
        assert f"{BASE}/reviews/{weekly.id}" in body
    assert "* and 1 more on the review page." in text
    assert "* 1 finding on the review page." in text
    assert "And 1 more on the review page" in html
    assert "1 finding on the review page" in html
    # A short digest is whole.
    [to_ravi] = smtp_server.to("ravi@example.com")
    assert "Fifth Avenue" in to_ravi.part("text/plain")
    assert "on the review page." not in to_ravi.part("text/plain")


def test_a_review_digest_goes_out_once_however_often_it_is_asked_for(db, org, smtp_server, app):
    busy(db, make_account(db, name="Westward", owner=org["wes"]))
    db.commit()
    runner = app.test_cli_runner()

    first = runner.invoke(args=["review", "--as-of", "2026-10-31", "--send-digest"])
    # The same day again (the review is replaced in place), from the command or a second run.
    again = runner.invoke(args=["review", "--as-of", "2026-10-31", "--send-digest"])
    assert send_digests(db, review(db), app.config) == []

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "No digest sent: the digest of the review as of 2026-10-31 already went out" in again.output
    assert len(smtp_server.messages) == 3
    assert len(smtp_server.to("wes@example.com")) == 1


def test_the_digest_command_reaches_the_rest_of_a_cut_off_send_without_running_the_review_again(
    db, org, smtp_server, app
):
    westward = make_account(db, name="Westward", owner=org["wes"])
    busy(db, westward)
    weekly = review(db)
    findings_before = finding_ids(db, weekly)
    smtp_server.refuse = {"walt@example.com"}
    runner = app.test_cli_runner()

    cut_off = runner.invoke(args=["digest", "--as-of", "2026-10-31"])

    assert cut_off.exit_code == 1
    assert "(1 of 3 sent; `flask --app app digest --as-of 2026-10-31` sends the rest)" in cut_off.output
    smtp_server.refuse = set()
    # Since the review ran, Westward's activity got a strategy: a review run again would find nothing.
    link(db, make_strategy(db, account=westward), *db.scalars(select(Activity)).all())
    db.commit()

    rest = runner.invoke(args=["digest", "--as-of", "2026-10-31"])

    assert rest.exit_code == 0, rest.output
    assert "Digest of the review as of 2026-10-31 sent to 2: walt@example.com, wes@example.com" in rest.output
    [to_wes] = smtp_server.to("wes@example.com")
    assert "Westward" in to_wes.part("text/plain")  # the stored review's findings, as Vera got them
    assert finding_ids(db, weekly) == findings_before
    done = runner.invoke(args=["digest"])  # the latest review
    assert done.exit_code == 0, done.output
    assert "No digest sent: the digest of the review as of 2026-10-31 already went out" in done.output
    assert len(smtp_server.messages) == 3


def test_the_digest_command_needs_a_stored_review(db, org, smtp_server, app):
    runner = app.test_cli_runner()

    none_yet = runner.invoke(args=["digest"])
    review(db, as_of=date(2026, 10, 24))
    other_day = runner.invoke(args=["digest", "--as-of", "2026-10-31"])
    nothing = runner.invoke(args=["digest", "--as-of", "2026-10-24"])

    assert none_yet.exit_code == 1
    assert "no review has run yet: `flask --app app review` runs one" in none_yet.output
    assert other_day.exit_code == 1
    assert (
        "no review as of 2026-10-31: `flask --app app review --as-of 2026-10-31` runs one" in other_day.output
    )
    assert nothing.exit_code == 0, nothing.output
    assert "No digest sent for the review as of 2026-10-24: nothing to report." in nothing.output
    assert "not the latest review" not in nothing.output
    assert smtp_server.messages == []
    review(db, as_of=date(2026, 10, 31))
    older = runner.invoke(args=["digest", "--as-of", "2026-10-24"])
    assert older.output.startswith(
        "Note: this is not the latest review (that is as of 2026-10-31); its digest tells people what stood "
        "on 2026-10-24."
    )


def finding_ids(db, weekly):
    return db.scalars(select(Finding.id).where(Finding.review_id == weekly.id).order_by(Finding.id)).all()


def test_each_email_the_smtp_server_takes_is_marked_accepted(db, org, smtp_server, app):
    busy(db, make_account(db, name="Westward", owner=org["wes"]))
    weekly = review(db)

    send_digests(db, weekly, app.config)

    rows = db.execute(select(DigestDelivery.sent_at, DigestDelivery.accepted_at)).all()
    assert len(rows) == 3
    assert all(accepted is not None and accepted >= claimed for claimed, accepted in rows)
    assert unconfirmed_deliveries(db, weekly, settled=timedelta(0)) == []


def test_an_email_a_stopped_sender_was_handing_over_is_named_and_can_be_sent_again(db, org, smtp_server, app):
    # A sender killed between claiming Walt's email and the SMTP server's answer leaves his claim
    # unconfirmed; another sender, or a later run, then reached everyone else and marked the digest sent.
    busy(db, make_account(db, name="Westward", owner=org["wes"]))
    weekly = review(db)
    now = datetime.now(UTC)
    db.add(DigestDelivery(review_id=weekly.id, user_id=org["west"].id, sent_at=now - timedelta(minutes=5)))
    db.add(DigestDelivery(review_id=weekly.id, user_id=org["wes"].id, sent_at=now - timedelta(seconds=20)))
    db.commit()
    send_digests(db, weekly, app.config)
    assert [m.recipients for m in smtp_server.messages] == [["vera@example.com"]]
    runner = app.test_cli_runner()

    told = runner.invoke(args=["digest"])

    assert told.exit_code == 0, told.output
    assert "already went out" in told.output
    # Wes's claim is 20 seconds old: its sender may still be talking to the server.
    assert (
        "Not confirmed: the email to walt@example.com was being handed to the SMTP server when its "
        "sender stopped, and may not have gone out. "
        "`flask --app app digest --as-of 2026-10-31 --resend-unconfirmed` sends it again"
    ) in " ".join(told.output.split())

    again = runner.invoke(args=["digest", "--as-of", "2026-10-31", "--resend-unconfirmed"])

    assert again.exit_code == 0, again.output
    assert "Sent again to 1: walt@example.com" in again.output
    assert "Not confirmed" not in again.output
    assert [r for m in smtp_server.messages for r in m.recipients] == ["vera@example.com", "walt@example.com"]
    assert "Westward" in smtp_server.to("walt@example.com")[0].part("text/plain")
    assert (
        "No unconfirmed email to send again." in runner.invoke(args=["digest", "--resend-unconfirmed"]).output
    )
    assert len(smtp_server.messages) == 2


def test_two_senders_sending_an_unconfirmed_email_again_send_it_once(db, org, smtp_server, app):
    busy(db, make_account(db, name="Westward", owner=org["wes"]))
    weekly = review(db)
    claimed = datetime.now(UTC) - timedelta(minutes=5)
    db.add(DigestDelivery(review_id=weekly.id, user_id=org["west"].id, sent_at=claimed))
    db.commit()

    def another_sender_takes_walt_over_first(config):
        with extension.engine.begin() as connection:
            connection.execute(
                update(DigestDelivery)
                .where(DigestDelivery.user_id == org["west"].id)
                .values(sent_at=utc(2030, 1, 1))
            )
        return connect_smtp(config)

    sent = resend_unconfirmed(db, weekly, app.config, smtp_factory=another_sender_takes_walt_over_first)

    assert sent == []
    assert smtp_server.messages == []


def test_a_digest_counts_a_thousand_or_more_with_separators(db, org, app):
    weekly = review(db)
    findings = [Finding(status="new") for _ in range(1500)] + [
        Finding(status="persisting") for _ in range(2000)
    ]
    digest = Digest(org["east"], findings, team=True)

    text, html = render_digest(digest, weekly, BASE, max_findings=0)

    assert subject_for(digest, weekly) == (
        "Tactics review 2026-10-31: 1,500 new, 2,000 still open for your team"
    )
    for body in (text, html):
        assert "New this review (1,500)" in body
        assert "Still open (2,000)" in body
        assert "2,000 findings on the review page" in body


def test_a_send_the_smtp_server_cuts_off_sends_the_rest_when_run_again(db, org, smtp_server, app):
    busy(db, make_account(db, name="Westward", owner=org["wes"]))
    weekly = review(db)
    smtp_server.refuse = {"walt@example.com"}  # vera, walt, wes in that order: walt's is turned away

    with pytest.raises(
        DigestNotSent,
        match=r"\(451, b'4.7.1 Too many messages.*\(1 of 3 sent; `flask --app app digest --as-of 2026-10-31` "
        r"sends the rest\)",
    ):
        send_digests(db, weekly, app.config)

    assert [m.recipients for m in smtp_server.messages] == [["vera@example.com"]]
    assert delivered_to(db, weekly) == ["vera@example.com"]
    assert db.get(Review, weekly.id).digest_sent_at is None
    smtp_server.refuse = set()

    again = send_digests(db, weekly, app.config)

    assert [d.recipient.email for d in again] == ["walt@example.com", "wes@example.com"]
    assert sorted(r for m in smtp_server.messages for r in m.recipients) == [
        "vera@example.com",
        "walt@example.com",
        "wes@example.com",
    ]
    assert delivered_to(db, weekly) == ["vera@example.com", "walt@example.com", "wes@example.com"]
    assert db.get(Review, weekly.id).digest_sent_at is not None
    assert send_digests(db, weekly, app.config) == []


def test_a_recipient_claimed_by_another_sender_meanwhile_is_not_emailed_twice(db, org, smtp_server, app):
    busy(db, make_account(db, name="Westward", owner=org["wes"]))
    weekly = review(db)

    def another_sender_claims_walt_first(config):
        # Between this sender's look at who already has it and its own claims, another one claims Walt.
        with extension.engine.begin() as connection:
            connection.execute(insert(DigestDelivery).values(review_id=weekly.id, user_id=org["west"].id))
        return connect_smtp(config)

    sent = send_digests(db, weekly, app.config, smtp_factory=another_sender_claims_walt_first)

    assert [d.recipient.email for d in sent] == ["vera@example.com", "wes@example.com"]
    assert smtp_server.to("walt@example.com") == []
    assert delivered_to(db, weekly) == ["vera@example.com", "walt@example.com", "wes@example.com"]


def delivered_to(db, weekly):
    return sorted(
        db.scalars(
            select(User.email)
            .join(DigestDelivery, DigestDelivery.user_id == User.id)
            .where(DigestDelivery.review_id == weekly.id)
        )
    )
