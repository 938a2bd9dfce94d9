"""The `users` commands: create people, set passwords, issue API tokens, list who is there."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from extensions import db, needs_current_schema
from planning.models import Role, User
from planning.users import (
    UserInvalid,
    create_user,
    find_user_by_email,
    issue_api_token,
    list_users,
    set_password,
)

users = AppGroup("users", help="Manage StratLink users, passwords and API tokens.")


def _user_or_exit(email: str) -> User:
    user = find_user_by_email(db.session, email)
    if user is None:
        raise click.ClickException(f"No user has the email {email!r}. See `flask --app app users list`.")
    return user


@users.command("token")
@click.argument("email")
@needs_current_schema
def token_command(email: str) -> None:
    """Create an API token for EMAIL and print it once."""
    user = _user_or_exit(email)
    if not user.active:
        raise click.ClickException(f"{user.email} is deactivated; a token would not work.")
    token = issue_api_token(db.session, user)
    db.session.commit()
    click.echo(token)
    click.echo(
        f"API token for {user.email}. It is shown only this once; send it as "
        "`Authorization: Bearer <token>`.",
        err=True,
    )


@users.command("create")
@click.argument("email")
@click.option("--name", required=True, help="The person's full name.")
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    default=Role.REP.value,
    show_default=True,
    help="rep, manager (a manager with no manager is the VP) or admin.",
)
@click.option("--manager", "manager_email", help="Email of the person's manager.")
@needs_current_schema
def create_command(email: str, name: str, role: str, manager_email: str | None) -> None:
    """Create a user who signs in with EMAIL (set a password with `users set-password`)."""
    manager = _user_or_exit(manager_email) if manager_email else None
    try:
        user = create_user(db.session, email, name, Role(role), manager)
    except UserInvalid as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    reporting = f", reporting to {manager.email}" if manager else ""
    click.echo(f"Created {user.role.value} {user.name} <{user.email}>{reporting}.")
    if user.role == Role.MANAGER and manager is None:
        click.echo(
            f"{user.name} reports to nobody, so they are a VP: they see every account and get the whole "
            "org's digest. Give them a manager with --manager if that is not meant."
        )


@users.command("set-password")
@click.argument("email")
@needs_current_schema
def set_password_command(email: str) -> None:
    """Set the sign-in password of EMAIL (prompted twice, hidden)."""
    user = _user_or_exit(email)
    # Prompt only once the user is known: nobody types a password for a typo.
    password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        set_password(user, password)
    except ValueError as error:
        raise click.ClickException(str(error)) from error
    db.session.commit()
    click.echo(f"Password set for {user.email}.")


@users.command("list")
@needs_current_schema
def list_command() -> None:
    """List every user with their role, manager and sign-in methods."""
    rows = list_users(db.session)
    if not rows:
        click.echo("No users yet. Load the demo (`flask --app app demo`) or run `users create`.")
        return
    header = ("email", "name", "role", "manager", "active", "password", "tokens")
    lines = [
        (
            row.user.email,
            row.user.name,
            row.user.role.value,
            row.manager_email or "",
            "yes" if row.user.active else "no",
            "yes" if row.user.password_hash else "no",
            str(row.tokens),
        )
        for row in rows
    ]
    widths = [max(len(line[index]) for line in [header, *lines]) for index in range(len(header))]
    for line in [header, *lines]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def init_app(app: Flask) -> None:
    """Register the `users` command group."""
    app.cli.add_command(users)
