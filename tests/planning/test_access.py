from __future__ import annotations

from planning.access import can_edit_account, can_view_account, visible_owner_ids
from planning.models import Role
from tests.factories import make_account, make_user


def _org(db):
    vp = make_user(db, role=Role.MANAGER)
    east = make_user(db, role=Role.MANAGER, manager=vp)
    west = make_user(db, role=Role.MANAGER, manager=vp)
    ann = make_user(db, manager=east)
    bob = make_user(db, manager=west)
    admin = make_user(db, role=Role.ADMIN)
    return vp, east, west, ann, bob, admin


def test_a_rep_sees_only_their_own_accounts(db):
    vp, east, west, ann, bob, admin = _org(db)
    assert visible_owner_ids(db, ann) == {ann.id}
    assert can_view_account(db, ann, make_account(db, owner=ann))
    assert not can_view_account(db, ann, make_account(db, owner=bob))


def test_a_manager_sees_their_team_at_any_depth_but_not_another_team(db):
    vp, east, west, ann, bob, admin = _org(db)
    deep = make_user(db, manager=ann)
    assert visible_owner_ids(db, east) == {east.id, ann.id, deep.id}
    assert not can_view_account(db, east, make_account(db, owner=bob))


def test_the_vp_and_admins_see_every_account_including_unowned_ones(db):
    vp, east, west, ann, bob, admin = _org(db)
    orphan = make_account(db, owner=None)
    assert visible_owner_ids(db, vp) is None
    assert can_view_account(db, vp, orphan)
    assert can_view_account(db, admin, orphan)


def test_only_the_owner_or_an_admin_may_write_on_an_account(db):
    vp, east, west, ann, bob, admin = _org(db)
    account = make_account(db, owner=ann)
    assert can_edit_account(ann, account)
    assert can_edit_account(admin, account)
    assert not can_edit_account(east, account)
    assert not can_edit_account(vp, account)
    assert not can_edit_account(bob, account)
