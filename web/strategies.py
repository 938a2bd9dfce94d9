"""Strategy pages: the editor with preview, the tactics warning, history, conflicts, linking, comments.

Each view parses the form, calls one planning function, and renders or redirects; the rules live in
planning/strategies.py, planning/links.py and planning/comments.py. CSRF is checked on every POST by
Flask-WTF's CSRFProtect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import login_required
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from extensions import DbSession, db
from planning.access import can_comment_on_account, can_edit_account
from planning.accounts import account_opportunities, is_valid_id
from planning.comments import add_comment, comments_on
from planning.describe import counted, join_words
from planning.links import (
    DELETED_IN_CRM,
    NO_SUCH_ACTIVITY,
    OTHER_ACCOUNT,
    SERVES_ANOTHER,
    LinkRefused,
    LinkResult,
    link_activities,
    suggest_links,
    unlink_activities,
)
from planning.markdown import render_markdown
from planning.metrics import dashboard_figures
from planning.models import Account, Activity, Strategy, StrategyStatus, User
from planning.strategies import (
    CONFLICT,
    FIELD_LABELS,
    MAX_TEXT_LENGTH,
    MINE,
    SAME,
    TEXT_FIELDS,
    THEIRS,
    UNCHANGED,
    NotAllowed,
    NotFound,
    ReadsLikeTactics,
    StaleVersion,
    StrategyInvalid,
    account_for_viewer,
    compare_versions,
    create_strategy,
    current_values,
    merge_stale_edit,
    revisions_of,
    strategy_for_viewer,
    update_strategy,
    word_diff,
)
from planning.tactics import check_tactics
from web.accounts import long_date
from web.auth import safe_next, signed_in_user

bp = Blueprint("strategies", __name__)

# What someone who may read an account's strategies, but not write them, is told when they try.
READ_ONLY = (
    "You can read this account's strategies but not change them: only the account's owner and admins "
    "write strategies and link activities. A manager can comment on a strategy from its page."
)
FORM_FIELDS = (*TEXT_FIELDS, "target_date", "review_date", "status", "opportunity_id")
STATUS_CHOICES = [
    ("draft", "Draft — still working on it"),
    ("active", "Active — this is the plan"),
    ("achieved", "Achieved — the customer got the outcome"),
    ("abandoned", "Abandoned — no longer pursued"),
]
FIELD_HINTS = {
    "objective": "The outcome the customer gets, in their terms: what will be different for them?",
    "customer_view": "What the customer cares about here, and how they would describe the problem.",
    "approach": "How we will spend our time and energy to get there: who, in what order, and why.",
    "success_measure": "How we will both know it worked: a number, a date, a change the customer sees.",
}
LINK_PER_PAGE = 50

_Found = TypeVar("_Found")


def _viewable_or_abort(lookup: Callable[[DbSession, User, int], _Found], key: int) -> _Found:
    """Return what `lookup` finds for the signed-in user, or answer 404 (no such record) or 403."""
    try:
        return lookup(db.session, signed_in_user(), key)
    except NotFound:
        abort(404)
    except NotAllowed:
        abort(403)


def _account_or_abort(account_id: int) -> Account:
    return _viewable_or_abort(account_for_viewer, account_id)


def _strategy_or_abort(strategy_id: int) -> Strategy:
    return _viewable_or_abort(strategy_for_viewer, strategy_id)


def _form_fields() -> dict[str, Any]:
    """Read the strategy fields from the submitted form, as text, for planning to check."""
    return {name: request.form.get(name, "") for name in FORM_FIELDS if name in request.form}


def _previews(values: dict[str, Any]) -> dict[str, Any]:
    return {name: render_markdown(str(values.get(name) or "")) for name in TEXT_FIELDS}


def _render_form(
    account: Account,
    strategy: Strategy | None,
    values: dict[str, Any],
    *,
    errors: dict[str, str] | None = None,
    tactics: Any = None,
    preview: bool = False,
    version: int | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    return (
        render_template(
            "strategies/form.html",
            account=account,
            strategy=strategy,
            values=values,
            errors=errors or {},
            tactics=tactics,
            previews=_previews(values) if preview else None,
            version=version if version is not None else (strategy.version if strategy else None),
            status_choices=STATUS_CHOICES,
            opportunities=account_opportunities(db.session, account.id),
            labels=FIELD_LABELS,
            hints=FIELD_HINTS,
        ),
        status,
    )


def _values_for_form(strategy: Strategy | None) -> dict[str, Any]:
    if strategy is None:
        return {name: "" for name in FORM_FIELDS} | {"status": "draft"}
    values = current_values(strategy)
    return {
        **values,
        "target_date": values["target_date"].isoformat() if values["target_date"] else "",
        "review_date": values["review_date"].isoformat() if values["review_date"] else "",
        "status": values["status"].value,
        "opportunity_id": values["opportunity_id"] or "",
    }


# --- the editor -------------------------------------------------------------------------------------


@bp.route("/accounts/<int:account_id>/strategies/new", methods=["GET", "POST"])
@login_required
def new(account_id: int) -> ResponseReturnValue:
    """Write a new strategy for an account."""
    account = _account_or_abort(account_id)
    if not can_edit_account(signed_in_user(), account):
        abort(403, READ_ONLY)
    if request.method == "GET":
        return _render_form(account, None, _values_for_form(None))
    values = _values_for_form(None) | _form_fields()
    if request.form.get("action") == "preview":
        return _render_form(account, None, values, preview=True)
    try:
        strategy = create_strategy(
            db.session,
            signed_in_user(),
            account,
            _form_fields(),
            activate_anyway=request.form.get("activate_anyway") == "1",
        )
    except StrategyInvalid as invalid:
        db.session.rollback()
        return _render_form(account, None, values, errors=invalid.errors, status=422)
    except ReadsLikeTactics as warning:
        db.session.rollback()
        return _render_form(account, None, values, tactics=warning.check, status=422)
    db.session.commit()
    flash(_saved_message(strategy), "success")
    return redirect(url_for("strategies.show", strategy_id=strategy.id))


@bp.route("/strategies/<int:strategy_id>/edit", methods=["GET", "POST"])
@login_required
def edit(strategy_id: int) -> ResponseReturnValue:
    """Edit a strategy; a save from an older version shows the conflict instead of overwriting."""
    strategy = _strategy_or_abort(strategy_id)
    account = strategy.account
    if not can_edit_account(signed_in_user(), account):
        abort(403, READ_ONLY)
    if request.method == "GET":
        return _render_form(account, strategy, _values_for_form(strategy))
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        abort(400)
    submitted = _form_fields()
    values = _values_for_form(strategy) | submitted
    if request.form.get("action") == "preview":
        return _render_form(account, strategy, values, preview=True, version=version)
    try:
        update_strategy(
            db.session,
            signed_in_user(),
            strategy,
            submitted,
            version=version,
            activate_anyway=request.form.get("activate_anyway") == "1",
        )
    except StrategyInvalid as invalid:
        db.session.rollback()
        return _render_form(account, strategy, values, errors=invalid.errors, version=version, status=422)
    except ReadsLikeTactics as warning:
        db.session.rollback()
        return _render_form(account, strategy, values, tactics=warning.check, version=version, status=422)
    except StaleVersion as stale:
        db.session.rollback()
        return _render_conflict(stale.strategy, values, stale.given_version, submitted)
    db.session.commit()
    if strategy.version == version:
        flash(f"No changes to save: the strategy is still at version {version}.", "info")
    else:
        flash(_saved_message(strategy), "success")
    return redirect(url_for("strategies.show", strategy_id=strategy.id))


def _saved_message(strategy: Strategy) -> str:
    if strategy.status == StrategyStatus.ACTIVE:
        return (
            f"Saved version {strategy.version}. The strategy is active: "
            + "now link the activities that serve it."
        )
    return f"Saved version {strategy.version}."


def _render_conflict(
    current: Strategy, mine: dict[str, Any], my_version: int, submitted: dict[str, Any]
) -> ResponseReturnValue:
    """Show a three-way merge of the edit with the saved version, and a merge form holding it.

    Against the version the edit started from, a field only one side changed takes that side's value;
    a field both changed differently is a conflict, shown side by side and filled in with the edit's value.
    """
    merge = merge_stale_edit(db.session, current, my_version, submitted)
    theirs = _values_for_form(current)
    opportunities = account_opportunities(db.session, current.account_id)
    opportunity_names = {str(item.id): item.name for item in opportunities}

    def shown(name: str, value: Any) -> str:
        text = "" if value is None else str(value)
        return opportunity_names.get(text, text) if name == "opportunity_id" else text

    fields, merged = [], {}
    for item in merge.fields:
        name = item.name
        merged[name] = theirs[name] if item.outcome in (UNCHANGED, THEIRS) else mine.get(name, "")
        old, new = {
            CONFLICT: (theirs[name], mine.get(name)),
            THEIRS: (item.base, theirs[name]),
        }.get(item.outcome, (item.base, mine.get(name)))
        old, new = shown(name, old), shown(name, new)
        fields.append(
            {
                "name": name,
                "label": FIELD_LABELS[name],
                "outcome": item.outcome,
                "old": old,
                "new": new,
                "theirs": theirs[name],
                "diff": word_diff(old, new) if name in TEXT_FIELDS else [],
            }
        )
    latest = revisions_of(db.session, current)
    return (
        render_template(
            "strategies/conflict.html",
            strategy=current,
            account=current.account,
            conflicts=[field for field in fields if field["outcome"] == CONFLICT],
            merged_fields=[field for field in fields if field["outcome"] in (THEIRS, MINE, SAME)],
            base_found=merge.base_found,
            my_version=my_version,
            latest_revision=latest[0] if latest else None,
            values=merged,
            version=current.version,
            status_choices=STATUS_CHOICES,
            opportunities=opportunities,
            labels=FIELD_LABELS,
            hints=FIELD_HINTS,
        ),
        409,
    )


@bp.get("/strategies/<int:strategy_id>")
@login_required
def show(strategy_id: int) -> ResponseReturnValue:
    """Show a strategy: its text, linked activities, suggested links and comments."""
    return _render_show(_strategy_or_abort(strategy_id))


def _render_show(
    strategy: Strategy, *, comment: str = "", comment_error: str | None = None
) -> ResponseReturnValue:
    """Render the strategy's page; a refused comment comes back in its box with the reason, as a 422."""
    account = strategy.account
    can_edit = can_edit_account(signed_in_user(), account)
    linked = sorted(
        (link.activity for link in strategy.links), key=lambda activity: activity.occurred_at, reverse=True
    )
    page = render_template(
        "strategies/show.html",
        strategy=strategy,
        account=account,
        rendered={name: render_markdown(getattr(strategy, name)) for name in TEXT_FIELDS},
        labels=FIELD_LABELS,
        tactics=check_tactics(strategy.objective, strategy.approach),
        linked=linked,
        suggestions=suggest_links(db.session, strategy, 8) if can_edit else [],
        comments=comments_on(db.session, strategy),
        can_edit=can_edit,
        can_comment=can_comment_on_account(db.session, signed_in_user(), account),
        comment=comment,
        comment_error=comment_error,
    )
    return page, 422 if comment_error else 200


@bp.get("/strategies/<int:strategy_id>/history")
@login_required
def history(strategy_id: int) -> ResponseReturnValue:
    """List the versions of a strategy and show any two side by side, differences marked."""
    strategy = _strategy_or_abort(strategy_id)
    revisions = revisions_of(db.session, strategy)
    versions = [revision.version for revision in revisions]
    newest = versions[0] if versions else strategy.version
    new_version = request.args.get("b", newest, type=int)
    old_version = request.args.get("a", versions[1] if len(versions) > 1 else newest, type=int)
    try:
        comparison = compare_versions(strategy, old_version, new_version) if versions else None
    except NotFound:
        abort(404)
    return render_template(
        "strategies/history.html",
        strategy=strategy,
        account=strategy.account,
        revisions=revisions,
        comparison=comparison,
        labels=FIELD_LABELS,
        text_fields=TEXT_FIELDS,
        opportunity_names={
            item.id: item.name for item in account_opportunities(db.session, strategy.account_id)
        },
    )


# --- linking ----------------------------------------------------------------------------------------


def _back_to_account(account: Account) -> ResponseReturnValue:
    # Only a path on this site: the form field must not become an open redirect.
    target = safe_next(request.form.get("next"))
    return redirect(target or url_for("accounts.account", account_id=account.id))


def _activity_ids() -> list[int]:
    ids = []
    for raw in request.form.getlist("activity_ids"):
        try:
            ids.append(int(raw))
        except ValueError:
            continue
    return ids


LINK_ACTIONS = ("link", "unlink")
ALREADY_LINKED = "Nothing changed: that activity was already linked to this strategy."
# Two people linking the same activity at once: the database's one-strategy-per-activity key refuses one.
LINKED_MEANWHILE = "Nothing was linked: someone linked one of these activities at the same moment. Try again."
# Where each page that links offers to move an activity that serves another strategy.
MOVE_FROM_TIMELINE = "tick “Move if linked elsewhere” to move {it}"
MOVE_FROM_SUGGESTIONS = (
    "to move {it} here, tick {it} on the account's timeline with “Move if linked elsewhere”"
)


@bp.post("/accounts/<int:account_id>/links")
@login_required
def link_from_timeline(account_id: int) -> ResponseReturnValue:
    """Link the activities ticked on the account timeline to a strategy, or unlink them."""
    account = _account_or_abort(account_id)
    if not can_edit_account(signed_in_user(), account):
        abort(403, READ_ONLY)
    action = request.form.get("action", "link")
    if action not in LINK_ACTIONS:
        abort(400)
    ids = _activity_ids()
    strategy_id = request.form.get("strategy_id", type=int)
    strategy = db.session.get(Strategy, strategy_id) if is_valid_id(strategy_id) else None
    if strategy is None or strategy.account_id != account.id:
        flash("Choose one of this account's strategies.", "error")
        return _back_to_account(account)
    if not ids:
        flash("Tick the activities to link first.", "error")
        return _back_to_account(account)
    try:
        if action == "unlink":
            result = unlink_activities(db.session, signed_in_user(), strategy, ids)
            message = (
                f"Unlinked {counted(len(result.unlinked), 'activity')}."
                if result.unlinked
                else "Nothing was unlinked: none of the ticked activities is linked to the chosen strategy."
            )
        else:
            result = link_activities(
                db.session, signed_in_user(), strategy, ids, move=request.form.get("move") == "1"
            )
            message = _linked_message(result)
        db.session.commit()
    except LinkRefused as refused:
        db.session.rollback()
        flash("Nothing was linked: " + _refusals(refused, MOVE_FROM_TIMELINE) + ".", "error")
        return _back_to_account(account)
    except IntegrityError:
        db.session.rollback()
        flash(LINKED_MEANWHILE, "error")
        return _back_to_account(account)
    changed = result.linked or result.moved or result.unlinked
    flash(message, "success" if changed else "info")
    return _back_to_account(account)


def _linked_message(result: LinkResult) -> str:
    """Say what a link call did: linked, moved, and already linked to this strategy."""
    already = len(result.unchanged)
    if not result.linked and not result.moved:
        if already == 1:
            return ALREADY_LINKED
        return f"Nothing changed: the {already} activities were already linked to this strategy."
    message = f"Linked {counted(len(result.linked) + len(result.moved), 'activity')} to the strategy."
    if result.moved:
        message += f" {counted(len(result.moved), 'activity')} moved from another strategy."
    if already:
        message += (
            f" {counted(already, 'activity')} {'was' if already == 1 else 'were'} already linked to it."
        )
    return message


def _refusals(refused: LinkRefused, how_to_move: str) -> str:
    """Say why the activities could not be linked, in words for the flash message: one phrase per
    reason, each activity named by its subject and day (people never see activity ids)."""
    by_reason: dict[str, list[int]] = {}
    for key, code in refused.reasons.items():
        by_reason.setdefault(code, []).append(key)
    phrases = []
    for code, keys in by_reason.items():
        one = len(keys) == 1
        if code == NO_SUCH_ACTIVITY:
            phrases.append(
                f"{counted(len(keys), 'ticked activity')} no longer {'exists' if one else 'exist'}"
            )
            continue
        if code == OTHER_ACCOUNT:  # counted, not named: that account may be one this person cannot see
            phrases.append(f"{counted(len(keys), 'ticked activity')} {REFUSAL_WORDS[code][0 if one else 1]}")
            continue
        what = REFUSAL_WORDS.get(code)
        if what is None:  # a reason without words of its own: the library's, for each activity
            phrases.extend(f"{counted(1, 'ticked activity')} {refused.problems[key]}" for key in keys)
            continue
        phrase = f"{_activities_named(keys)} {what[0] if one else what[1]}"
        if code == SERVES_ANOTHER:
            phrase += f" ({how_to_move.format(it='it' if one else 'them')})"
        phrases.append(phrase)
    return "; ".join(phrases)


REFUSAL_WORDS = {
    SERVES_ANOTHER: ("already serves another strategy", "already serve another strategy"),
    OTHER_ACCOUNT: ("belongs to another account", "belong to another account"),
    DELETED_IN_CRM: ("was deleted in the CRM", "were deleted in the CRM"),
}
NAMED_ACTIVITIES = 3  # named in a refusal; the rest are counted


def _activities_named(keys: list[int]) -> str:
    """Name activities as the timeline shows them: “Sent pricing sheet” (3 Nov 2026), …, and 4 more."""
    shown = db.session.execute(
        select(Activity.kind, Activity.subject, Activity.occurred_at)
        .where(Activity.id.in_(keys))
        .order_by(Activity.occurred_at.desc(), Activity.id)
        .limit(NAMED_ACTIVITIES)
    ).all()
    names = [
        f"“{subject}” ({long_date(at)})" if subject else f"a {kind} on {long_date(at)}"
        for kind, subject, at in shown
    ]
    if len(keys) > len(shown):
        names.append(f"{len(keys) - len(shown)} more")
    return join_words(names)


@bp.post("/strategies/<int:strategy_id>/suggestions/<int:activity_id>/accept")
@login_required
def accept_suggestion(strategy_id: int, activity_id: int) -> ResponseReturnValue:
    """Link one suggested activity to the strategy."""
    strategy = _strategy_or_abort(strategy_id)
    if not can_edit_account(signed_in_user(), strategy.account):
        abort(403, READ_ONLY)
    try:
        result = link_activities(db.session, signed_in_user(), strategy, [activity_id])
        db.session.commit()
    except LinkRefused as refused:
        db.session.rollback()
        flash("Not linked: " + _refusals(refused, MOVE_FROM_SUGGESTIONS) + ".", "error")
    except IntegrityError:
        db.session.rollback()
        flash(LINKED_MEANWHILE, "error")
    else:
        if result.linked:
            flash("Linked the suggested activity.", "success")
        else:
            flash(ALREADY_LINKED, "info")
    return redirect(url_for("strategies.show", strategy_id=strategy.id) + "#suggestions")


@bp.post("/strategies/<int:strategy_id>/unlink/<int:activity_id>")
@login_required
def unlink_one(strategy_id: int, activity_id: int) -> ResponseReturnValue:
    """Unlink one activity from the strategy; an unknown activity is 404, one not linked to it is left."""
    strategy = _strategy_or_abort(strategy_id)
    if not can_edit_account(signed_in_user(), strategy.account):
        abort(403, READ_ONLY)
    activity = db.session.get(Activity, activity_id) if is_valid_id(activity_id) else None
    if activity is None:
        abort(404)
    result = unlink_activities(db.session, signed_in_user(), strategy, [activity_id])
    db.session.commit()
    if result.unlinked:
        flash("Unlinked the activity.", "success")
    else:
        # Say more only of an activity of this account: another account's may be out of scope.
        same_account = activity.account_id == strategy.account_id
        name = f"“{activity.subject}”" if same_account and activity.subject else f"activity {activity_id}"
        elsewhere = " (it serves another strategy)" if same_account and activity.link is not None else ""
        flash(f"Nothing was unlinked: {name} is not linked to this strategy{elsewhere}.", "error")
    return redirect(url_for("strategies.show", strategy_id=strategy.id) + "#linked")


# --- comments ---------------------------------------------------------------------------------------


@bp.post("/strategies/<int:strategy_id>/comments")
@login_required
def comment(strategy_id: int) -> ResponseReturnValue:
    """Add a comment to the strategy."""
    strategy = _strategy_or_abort(strategy_id)
    body = request.form.get("body", "")
    try:
        add_comment(db.session, signed_in_user(), strategy, body)
    except NotAllowed:
        abort(403)
    except StrategyInvalid as invalid:
        db.session.rollback()
        # The text stays in its box, with the reason beside it: nothing typed is thrown away.
        return _render_show(strategy, comment=body, comment_error=invalid.errors["body"])
    db.session.commit()
    flash("Comment added.", "success")
    return redirect(url_for("strategies.show", strategy_id=strategy.id) + "#comments")


# --- dashboard --------------------------------------------------------------------------------------


@bp.get("/dashboard")
@login_required
def dashboard() -> ResponseReturnValue:
    """Show strategy coverage, pipeline with and without a strategy, and the dialogue ratio."""
    return render_template(
        "strategies/dashboard.html", dashboard=dashboard_figures(db.session, signed_in_user())
    )


def init_app(app: Flask) -> None:
    """Register the strategy pages."""
    app.register_blueprint(bp)
    # The editor's text fields stop where saving would refuse them.
    app.jinja_env.globals["max_text_length"] = MAX_TEXT_LENGTH
