"""The account list and the account page, plus the formatting filters every page's templates use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, Flask, abort, current_app, flash, has_app_context, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from extensions import db
from planning.access import can_edit_account, can_view_account
from planning.accounts import (
    BADGE_LABELS,
    DEFAULT_SORT,
    SORTS,
    get_account,
    get_account_detail,
    list_account_activities,
    list_accounts,
    owner_choices,
)
from planning.models import ActivityKind
from planning.review import ReviewParameterError, zone_for

bp = Blueprint("accounts", __name__, url_prefix="/accounts")

PER_PAGE = 50
SORT_LABELS = {
    "priority": "Needs attention first",
    "name": "Name",
    "pipeline": "Open pipeline",
    "activity": "Recent activity",
}
LINKED_FILTERS = {"": "Linked or not", "unlinked": "Not linked", "linked": "Linked"}


@bp.get("")
@login_required
def index() -> ResponseReturnValue:
    """List the accounts the signed-in user may see."""
    sort = request.args.get("sort", DEFAULT_SORT)
    if sort not in SORTS:
        sort = DEFAULT_SORT
    # A NUL can match no name (list_accounts drops it too): the form shows back the filter applied.
    q = request.args.get("q", "").replace("\x00", "").strip()[:200] or None
    owner_id = request.args.get("owner", type=int)
    needs_strategy = request.args.get("needs_strategy") == "1"
    result = list_accounts(
        db.session,
        current_user,
        q=q,
        owner_id=owner_id,
        needs_strategy=needs_strategy,
        sort=sort,
        page=request.args.get("page", 1, type=int),
        per_page=PER_PAGE,
    )
    return render_template(
        "accounts/index.html",
        result=result,
        badge_labels=BADGE_LABELS,
        filters={"q": q, "owner_id": owner_id, "needs_strategy": needs_strategy},
        sort=sort,
        default_sort=DEFAULT_SORT,
        sort_labels=SORT_LABELS,
        owners=owner_choices(db.session, current_user),
    )


@bp.get("/<int:account_id>")
@login_required
def account(account_id: int) -> ResponseReturnValue:
    """Show one account: its figures, open opportunities, strategies and activity timeline."""
    found = get_account(db.session, account_id)
    if found is None:
        abort(404)
    if not can_view_account(db.session, current_user, found):
        abort(403)
    timeline_filters = {
        "kind": request.args.get("kind", "") if request.args.get("kind", "") in KIND_VALUES else "",
        "from": request.args.get("from", "").strip()[:10],
        "to": request.args.get("to", "").strip()[:10],
        "linked": request.args.get("linked", "") if request.args.get("linked", "") in LINKED_FILTERS else "",
    }
    for name in ("from", "to"):
        if timeline_filters[name] and _day(timeline_filters[name]) is None:
            # Say so rather than leave the bad day in the field over a timeline it did not filter.
            flash(
                f"“{timeline_filters[name]}” is not a day (YYYY-MM-DD), so the “{name}” filter is off.",
                "error",
            )
            timeline_filters[name] = ""
    return render_template(
        "accounts/account.html",
        detail=get_account_detail(db.session, found),
        timeline=list_account_activities(
            db.session,
            found.id,
            kinds=[timeline_filters["kind"]] if timeline_filters["kind"] else None,
            start=parse_day(timeline_filters["from"]),
            end=parse_day(timeline_filters["to"], end=True),
            linked={"linked": True, "unlinked": False}.get(timeline_filters["linked"]),
            page=request.args.get("page", 1, type=int),
            per_page=PER_PAGE,
        ),
        timeline_filters=timeline_filters,
        kinds=KIND_VALUES,
        linked_filters=LINKED_FILTERS,
        can_edit=can_edit_account(current_user, found),
    )


KIND_VALUES = [kind.value for kind in ActivityKind]


def parse_day(raw: str | None, *, end: bool = False) -> datetime | None:
    """Turn a YYYY-MM-DD filter into a UTC bound: the start of that day in the org's time zone, or of
    the next one for `end`; None for no bound (not a day, or a bound past the calendar's ends)."""
    day = _day(raw)
    if day is None:
        return None
    try:
        start = datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=display_zone())
        return start.astimezone(UTC)
    except OverflowError:  # after 9999-12-31, or before 0001-01-01 in UTC: nothing lies beyond
        return None


def _day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat((raw or "").strip())
    except ValueError:
        return None


def display_zone() -> ZoneInfo:
    """The org's time zone, in which pages show days and times: REVIEW_TIMEZONE (UTC if unset or unknown,
    and outside an app)."""
    if not has_app_context():
        return ZoneInfo("UTC")
    try:
        return zone_for(current_app.config.get("REVIEW_TIMEZONE") or "UTC")
    except ReviewParameterError:
        return ZoneInfo("UTC")


# --- Formatting for templates ---------------------------------------------------------------


def money(value: Decimal | float | int | None) -> str:
    """Format an amount in dollars: $1.2M from a million up, else $45,000 (halves round up)."""
    if value is None:
        return "—"
    amount = Decimal(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    # Each unit takes over where the smaller one would print 1,000 or more after rounding.
    whole = amount.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if whole < 10**6:
        return f"{sign}${whole:,}"
    millions = (amount / 10**6).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if millions < 1000:
        return f"{sign}${str(millions).removesuffix('.0')}M"
    billions = (amount / 10**9).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return f"{sign}${billions:,}".removesuffix(".0") + "B"


def number(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def ago(moment: datetime | date | None, now: datetime | None = None) -> str:
    """Say how long ago (or how soon) a moment is, in words; dates further than a month away in full."""
    if moment is None:
        return "—"
    now = now or datetime.now(UTC)
    if not isinstance(moment, datetime):
        days = (moment - now.astimezone(display_zone()).date()).days
        if days == 0:
            return "today"
        if days == -1:
            return "yesterday"
        if days == 1:
            return "tomorrow"
        if abs(days) <= 30:
            return f"in {days} days" if days > 0 else f"{-days} days ago"
        return long_date(moment)
    seconds = (now - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 60:
        return "just now"
    for unit_seconds, unit, limit in ((60, "minute", 60), (3600, "hour", 24), (86400, "day", 31)):
        count = int(seconds // unit_seconds)
        if count < limit:
            words = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {words}" if future else f"{words} ago"
    return long_date(moment)


def long_date(moment: datetime | date | None) -> str:
    """Say a day in full, "1 Nov 2026"; a moment on its day in the org's time zone."""
    if moment is None:
        return "—"
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        moment = moment.astimezone(display_zone())
    return f"{moment.day} {moment:%b %Y}"


def date_time(moment: datetime | None) -> str:
    """Say a moment in the org's time zone, naming it: "1 Nov 2026, 08:59 JST"."""
    if moment is None:
        return "—"
    local = moment.astimezone(display_zone()) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return f"{local.day} {local:%b %Y, %H:%M} {local.tzname()}"


def safe_url(url: str | None) -> str | None:
    """Return a CRM link only if it is http(s); anything else (javascript:, data:) is dropped."""
    if not url:
        return None
    return url if urlsplit(url.strip()).scheme.lower() in {"http", "https"} else None


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def page_url(**changes: Any) -> str:
    """Return the current URL with some query arguments replaced (None removes one)."""
    arguments = request.args.to_dict()
    for key, value in changes.items():
        if value is None:
            arguments.pop(key, None)
        else:
            arguments[key] = str(value)
    query = urlencode(arguments)
    return f"{request.path}?{query}" if query else request.path


def init_app(app: Flask) -> None:
    """Register the account pages and the template filters."""
    filters: dict[str, Callable[..., Any]] = {
        "money": money,
        "number": number,
        "ago": ago,
        "long_date": long_date,
        "date_time": date_time,
        "safe_url": safe_url,
        "ratio": ratio,
    }
    for name, function in filters.items():
        app.add_template_filter(function, name)
    app.add_template_global(page_url, "page_url")
    app.register_blueprint(bp)
