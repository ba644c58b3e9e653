"""Users, argon2 hashes, log-in and lock-out."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.models import AuditEntry, User, utcnow
from app.models.enums import Role
from app.services import auth
from app.services.errors import AccountLocked, AuthenticationFailed, PermissionDenied, ValidationFailed

from .conftest import PASSWORD


def test_login_returns_the_users_actor(db, users) -> None:
    actor = auth.login(db, "clerk1", PASSWORD)
    assert (actor.username, actor.role, actor.user_id) == ("clerk1", Role.CLERK, users["clerk1"].user_id)


def test_password_is_stored_as_argon2id_only(db, users) -> None:
    with db.read() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "clerk1"))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_wrong_password_and_unknown_user_get_the_same_answer(db, users) -> None:
    with pytest.raises(AuthenticationFailed) as a:
        auth.login(db, "clerk1", "not-the-password")
    with pytest.raises(AuthenticationFailed) as b:
        auth.login(db, "nobody", "not-the-password")
    assert str(a.value) == str(b.value) == "Wrong user name or password."


def test_lockout_after_repeated_failures_even_with_right_password(db, users) -> None:
    for _ in range(auth.MAX_FAILED_LOGINS - 1):
        with pytest.raises(AuthenticationFailed):
            auth.login(db, "clerk2", "wrong-password")
    with pytest.raises(AccountLocked, match="locked until"):
        auth.login(db, "clerk2", "wrong-password")
    with pytest.raises(AccountLocked):
        auth.login(db, "clerk2", PASSWORD)
    with db.read() as s:
        actions = s.scalars(select(AuditEntry.action).where(AuditEntry.username == "clerk2")).all()
    assert actions.count("user.login_failed") == auth.MAX_FAILED_LOGINS - 1
    assert "user.locked" in actions
    # An admin unlocks; the right password works again and resets the counter.
    auth.unlock(db, users["admin"], "clerk2")
    assert auth.login(db, "clerk2", PASSWORD).username == "clerk2"


def test_success_resets_the_failure_count(db, users) -> None:
    for _ in range(auth.MAX_FAILED_LOGINS - 1):
        with pytest.raises(AuthenticationFailed):
            auth.login(db, "clerk1", "wrong-password")
    auth.login(db, "clerk1", PASSWORD)
    with pytest.raises(AuthenticationFailed) as err:
        auth.login(db, "clerk1", "wrong-password")
    assert not isinstance(err.value, AccountLocked)


def test_lock_expires(db, users) -> None:
    with db.write() as s:
        s.execute(update(User).where(User.username == "clerk1").values(failed_logins=5))
    with pytest.raises(AccountLocked):
        auth.login(db, "clerk1", "wrong-password")
    with db.write() as s:
        s.execute(
            update(User).where(User.username == "clerk1").values(locked_until=utcnow() - dt.timedelta(1))
        )
    assert auth.login(db, "clerk1", PASSWORD).username == "clerk1"


def test_only_admins_add_users_and_input_is_checked(db, users) -> None:
    with pytest.raises(PermissionDenied):
        auth.create_user(db, users["supervisor"], "eve", Role.ADMIN, PASSWORD)
    with pytest.raises(ValidationFailed, match="already exists"):
        auth.create_user(db, users["admin"], "clerk1", Role.CLERK, PASSWORD)
    with pytest.raises(ValidationFailed, match="Unknown role"):
        auth.create_user(db, users["admin"], "newbie", "trader", PASSWORD)
    with pytest.raises(ValidationFailed, match="at least"):
        auth.create_user(db, users["admin"], "newbie", Role.CLERK, "short")
    created = auth.create_user(db, users["admin"], "newbie", "clerk", PASSWORD)
    assert created.role is Role.CLERK
