"""Signing in and out: the password form, the demo's one-click list, API bearer tokens, the header nav.

The rules for users, passwords and tokens live in planning/users.py; this module wires them to Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Request,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import InputRequired, Length

from extensions import DbSession, db, login_manager
from planning.accounts import is_valid_id
from planning.models import Role, User
from planning.users import authenticate, user_for_api_token

# Older callers import these from here; they live in planning.users (explicit re-exports).

bp = Blueprint("auth", __name__)

WRONG_CREDENTIALS = "Wrong email or password."
# The demo's sign-in list stays readable even for an org built with `demo --scale`.
DEMO_GROUP_LIMIT = 60


# --- The signed-in user -----------------------------------------------------------------------


def signed_in_user() -> User:
    """Return the signed-in user as a `User` (not Flask-Login's proxy), for planning functions."""
    user: User = current_user._get_current_object()  # type: ignore[attr-defined]
    return user


# --- Where to go after signing in -------------------------------------------------------------


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _after_sign_in(target: str | None) -> str:
    return safe_next(target) or url_for("accounts.index")


# --- The demo's sign-in list -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignInGroup:
    title: str
    users: list[User]
    more: int


def demo_sign_in_groups(session: DbSession) -> list[SignInGroup]:
    """Return the active users grouped as VP, managers, reps and admins, for one-click demo sign-in."""
    users = session.scalars(select(User).where(User.active.is_(True)).order_by(User.name, User.id))
    groups: dict[str, list[User]] = {"VP": [], "Managers": [], "Reps": [], "Admins": []}
    for user in users:
        if user.role == Role.ADMIN:
            groups["Admins"].append(user)
        elif user.role == Role.MANAGER:
            groups["VP" if user.manager_id is None else "Managers"].append(user)
        else:
            groups["Reps"].append(user)
    return [
        SignInGroup(title, members[:DEMO_GROUP_LIMIT], max(0, len(members) - DEMO_GROUP_LIMIT))
        for title, members in groups.items()
        if members
    ]


def demo_enabled() -> bool:
    return current_app.config.get("STRATLINK_SOURCE") == "demo"


# --- Pages ---------------------------------------------------------------------------------------


class SignInForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("Email", validators=[InputRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=1024)])
    next = HiddenField()


@bp.get("/")
def home() -> ResponseReturnValue:
    return redirect(url_for("accounts.index"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the sign-in page and check a submitted email and password."""
    form = SignInForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        if current_user.is_authenticated:
            return redirect(_after_sign_in(form.next.data))
    if form.validate_on_submit():
        user = authenticate(db.session, form.email.data or "", form.password.data or "")
        if user is not None:
            _sign_in(user)
            return redirect(_after_sign_in(form.next.data))
        flash(WRONG_CREDENTIALS, "error")
    groups = demo_sign_in_groups(db.session) if demo_enabled() else []
    return render_template("auth/login.html", form=form, demo_groups=groups)


@bp.post("/login/demo/<int:user_id>")
def demo_login(user_id: int) -> ResponseReturnValue:
    """Sign in as a demo user in one click; only while the demo is the source."""
    if not demo_enabled():
        abort(404)
    user = db.session.get(User, user_id) if is_valid_id(user_id) else None
    if user is None or not user.active:
        abort(404)
    _sign_in(user)
    return redirect(_after_sign_in(request.form.get("next")))


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def _sign_in(user: User) -> None:
    # A fresh session on every sign-in: nothing from before it carries over.
    session.clear()
    login_user(user)
    flash(f"Signed in as {user.name}.", "info")


def role_label(user: User) -> str:
    """Name a user's role as people say it: the manager at the top is the VP."""
    if user.role == Role.MANAGER and user.manager_id is None:
        return "VP"
    return {Role.REP: "Rep", Role.MANAGER: "Manager", Role.ADMIN: "Admin"}[user.role]


# --- Header navigation -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str


# Links offered in the header when a module serving that path is installed; the role, when set,
# is the only one that sees the link.
NAV_CANDIDATES: tuple[tuple[str, str, Role | None], ...] = (
    ("Accounts", "/accounts", None),
    ("Review", "/reviews", None),
    ("Dashboard", "/dashboard", None),
    ("Admin", "/admin", Role.ADMIN),
)


def installed_nav(app: Flask) -> list[tuple[str, str, Role | None]]:
    """Return the candidate links whose path is served by a registered view function."""
    adapter = app.url_map.bind("localhost")
    found = []
    for label, path, role in NAV_CANDIDATES:
        try:
            endpoint, _ = adapter.match(path, method="GET")
        except RequestRedirect as redirect_to:  # "/reviews" registered as "/reviews/"
            path = urlsplit(redirect_to.new_url).path
            endpoint = adapter.match(path, method="GET")[0]
        except (NotFound, MethodNotAllowed):
            continue
        if endpoint in app.view_functions:
            found.append((label, path, role))
    return found


def nav_items() -> list[NavItem]:
    """Return the header links the signed-in user may follow."""
    if not current_user.is_authenticated:
        return []
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    # The URL map does not change once the app serves requests, so look it up once.
    if "stratlink_nav" not in app.extensions:
        app.extensions["stratlink_nav"] = installed_nav(app)
    return [
        NavItem(label, href)
        for label, href, role in app.extensions["stratlink_nav"]
        if role is None or current_user.role == role
    ]


# --- Wiring --------------------------------------------------------------------------------------


def _load_user(user_id: str) -> User | None:
    try:
        key = int(user_id)
    except ValueError:
        return None
    user = db.session.get(User, key) if is_valid_id(key) else None
    return user if user is not None and user.active else None


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _load_user_from_request(incoming: Request) -> User | None:
    # Tokens are for the JSON API only: the pages take a signed-in session, with its CSRF protection.
    if not _is_api(incoming.path):
        return None
    scheme, _, token = incoming.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return user_for_api_token(db.session, token.strip())


def _unauthorized() -> ResponseReturnValue:
    if _is_api(request.path):
        from web.api import error_body

        body = error_body(401, "Sign in, or send Authorization: Bearer <token>.")
        return body, 401, {"WWW-Authenticate": 'Bearer realm="StratLink"'}
    flash("Sign in to continue.", "info")
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.login", next=safe_next(target)))


def init_app(app: Flask) -> None:
    """Set up Flask-Login (sessions and bearer tokens) and register the sign-in pages."""
    login_manager.login_view = "auth.login"
    login_manager.user_loader(_load_user)
    login_manager.request_loader(_load_user_from_request)
    login_manager.unauthorized_handler(_unauthorized)

    @app.before_request
    def authenticate_each_request() -> None:
        # Flask-Login caches the user on `g`, which lives as long as the app context; when one app
        # context spans several requests (the test suite's does), each request must still sign in anew.
        g.pop("_login_user", None)

    @app.context_processor
    def header_context() -> dict[str, Any]:
        return {"nav_items": nav_items, "demo_enabled": demo_enabled, "role_label": role_label}

    app.register_blueprint(bp)
