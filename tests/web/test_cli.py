from __future__ import annotations

import pytest
from sqlalchemy import select

from planning.models import ApiToken, Role, User
from planning.users import hash_token
from web.auth import user_for_api_token


@pytest.fixture
def runner(app):
    # Click 8.2+ keeps stdout and stderr apart (result.stdout) and joins them in result.output.
    return app.test_cli_runner()


def test_users_create_makes_a_rep_by_default_and_a_manager_link(runner, db, org):
    result = runner.invoke(
        args=["users", "create", "Nia@Example.com", "--name", "Nia Noor", "--manager", "eli@example.com"]
    )
    assert result.exit_code == 0, result.output
    assert "Created rep Nia Noor <nia@example.com>, reporting to eli@example.com." in result.output
    nia = db.scalars(select(User).where(User.email == "nia@example.com")).one()
    assert nia.role == Role.REP and nia.manager_id == org.east.id and nia.password_hash is None


def test_users_create_refuses_a_taken_email_and_an_unknown_manager(runner, db, org):
    taken = runner.invoke(args=["users", "create", "ANN@example.com", "--name", "Ann Again"])
    assert taken.exit_code == 1
    assert "already exists" in taken.output
    unknown = runner.invoke(
        args=["users", "create", "new@example.com", "--name", "N", "--manager", "who@x.com"]
    )
    assert unknown.exit_code == 1
    assert "No user has the email 'who@x.com'" in unknown.output
    assert db.scalar(select(User).where(User.email == "new@example.com")) is None


def test_users_create_refuses_a_rep_as_manager(runner, db, org):
    result = runner.invoke(
        args=["users", "create", "new@example.com", "--name", "N", "--manager", "ann@example.com"]
    )

    assert result.exit_code == 1
    assert "ann@example.com is a rep; a person's manager must be a manager or an admin" in result.output
    assert db.scalar(select(User).where(User.email == "new@example.com")) is None


def test_users_create_says_when_a_manager_without_a_manager_becomes_a_vp(runner, org):
    vp = runner.invoke(args=["users", "create", "top@example.com", "--name", "Tia Top", "--role", "manager"])
    managed = runner.invoke(
        args=[
            "users",
            "create",
            "mid@example.com",
            "--name",
            "Mo Mid",
            "--role",
            "manager",
            "--manager",
            "vera@example.com",
        ]
    )

    assert vp.exit_code == managed.exit_code == 0
    assert "Tia Top reports to nobody, so they are a VP: they see every account" in vp.output
    assert "VP" not in managed.output


def test_users_create_accepts_only_the_known_roles(runner, org):
    result = runner.invoke(args=["users", "create", "x@example.com", "--name", "X", "--role", "vp"])
    assert result.exit_code == 2
    admin = runner.invoke(args=["users", "create", "root@example.com", "--name", "Root", "--role", "admin"])
    assert admin.exit_code == 0


def test_users_set_password_prompts_twice_and_enables_sign_in(runner, client, org):
    mismatch = runner.invoke(
        args=["users", "set-password", "ann@example.com"], input="first-pass\nother-pass\n"
    )
    assert mismatch.exit_code != 0
    result = runner.invoke(
        args=["users", "set-password", "ann@example.com"], input="long enough pw\nlong enough pw\n"
    )
    assert result.exit_code == 0, result.output
    assert "Password set for ann@example.com." in result.output
    assert "long enough pw" not in result.output
    response = client.post("/login", data={"email": "ann@example.com", "password": "long enough pw"})
    assert response.status_code == 302


def test_users_set_password_refuses_a_short_password(runner, org):
    result = runner.invoke(args=["users", "set-password", "ann@example.com"], input="short\nshort\n")
    assert result.exit_code == 1
    assert "at least 8 characters" in result.output
    assert org.ann.password_hash is None


def test_users_token_prints_a_token_once_and_stores_only_its_hash(runner, db, org):
    result = runner.invoke(args=["users", "token", "ann@example.com"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert len(token) >= 40
    stored = db.scalars(select(ApiToken).where(ApiToken.user_id == org.ann.id)).one()
    assert stored.token_hash == hash_token(token)
    assert user_for_api_token(db, token) == org.ann
    assert token not in result.stderr


@pytest.mark.parametrize("command", [["token"], ["set-password"]])
def test_an_unknown_email_is_a_clear_error_with_exit_code_1(runner, org, command):
    result = runner.invoke(
        args=["users", *command, "nobody@example.com"], input="long enough pw\nlong enough pw\n"
    )
    assert result.exit_code == 1
    assert "No user has the email 'nobody@example.com'" in result.output
    assert "password" not in result.output.lower()  # nobody is asked for a password for a typo


def test_users_list_shows_everyone_with_role_manager_and_sign_in_methods(runner, db, org):
    runner.invoke(args=["users", "token", "bob@example.com"])
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["email", "name", "role", "manager", "active", "password", "tokens"]
    bob = next(line for line in lines if line.startswith("bob@example.com"))
    assert bob.split()[-4:] == ["wendy@example.com", "yes", "no", "1"]
    assert len(lines) == 1 + 7


def test_users_list_on_an_empty_database_says_how_to_start(runner):
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0
    assert "No users yet" in result.output
