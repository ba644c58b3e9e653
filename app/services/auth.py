"""Users, passwords (argon2id) and log-in with lock-out after repeated failures."""

from __future__ import annotations

import datetime as dt

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from app.models import User, utcnow
from app.models.enums import ChangeAction, Role

from . import audit
from .db import Database
from .errors import AccountLocked, AuthenticationFailed, NotFound, ValidationFailed
from .permissions import Actor, Permission, require

MAX_FAILED_LOGINS = 5
LOCKOUT = dt.timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()  # argon2id with the library's recommended (RFC 9106 low-memory) parameters


def use_hasher(hasher: PasswordHasher) -> None:
    """Swap the hasher (the test suite uses cheaper parameters, as Django's test settings do)."""
    global _hasher
    _hasher = hasher


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")


def actor_for(user: User) -> Actor:
    return Actor(user_id=user.id, username=user.username, role=user.role, timezone=user.timezone)


def create_user(
    db: Database,
    actor: Actor,
    username: str,
    role: Role | str,
    password: str,
    *,
    full_name: str = "",
    timezone: str = "Europe/London",
) -> Actor:
    """Add a user (admins only). The new user's password is stored as an argon2id hash, never in clear."""
    require(actor, Permission.MANAGE_USERS)
    username = username.strip()
    if (
        not username
        or len(username) > 64
        or not username.replace(".", "").replace("_", "").replace("-", "").isalnum()
    ):
        raise ValidationFailed(
            f"'{username}' is not a valid user name (letters, digits, . _ - ; at most 64)."
        )
    try:
        role = Role(role)
    except ValueError:
        raise ValidationFailed(
            f"Unknown role '{role}'; choose one of {', '.join(r.value for r in Role)}."
        ) from None
    _check_password_rules(password)
    with db.write() as s:
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise ValidationFailed(f"A user named '{username}' already exists.")
        user = User(
            username=username,
            full_name=full_name,
            role=role,
            password_hash=hash_password(password),
            timezone=timezone,
        )
        s.add(user)
        s.flush()
        audit.record(
            s,
            actor,
            "user.create",
            "users",
            user.id,
            after={"username": username, "role": role.value, "full_name": full_name},
            change=ChangeAction.INSERT,
        )
        return actor_for(user)


def login(db: Database, username: str, password: str) -> Actor:
    """Check a user name and password; lock the account after MAX_FAILED_LOGINS failures in a row.

    The refusal does not say whether the user name exists, only that the pair is wrong, so it gives nothing away.
    """
    now = utcnow()
    with db.write() as s:
        user = s.scalar(select(User).where(User.username == username.strip()).with_for_update())
        if user is None or not user.is_active:
            raise AuthenticationFailed("Wrong user name or password.")
        if user.locked_until is not None and user.locked_until > now:
            raise AccountLocked(
                f"The account '{user.username}' is locked after {MAX_FAILED_LOGINS} failed log-ins until "
                f"{user.locked_until:%H:%M} UTC. Ask an administrator to unlock it sooner."
            )
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            user.failed_logins += 1
            actor = actor_for(user)
            if user.failed_logins >= MAX_FAILED_LOGINS:
                user.locked_until = now + LOCKOUT
                audit.record(
                    s, actor, "user.locked", "users", user.id, after={"locked_until": user.locked_until}
                )
                locked = AccountLocked(
                    f"Too many failed log-ins: the account '{user.username}' is locked until "
                    f"{user.locked_until:%H:%M} UTC."
                )
            else:
                audit.record(
                    s,
                    actor,
                    "user.login_failed",
                    "users",
                    user.id,
                    after={"failed_logins": user.failed_logins},
                    change=None,
                )
                locked = None
        else:
            user.failed_logins = 0
            user.locked_until = None
            user.last_login_at = now
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = hash_password(password)
            actor = actor_for(user)
            audit.record(s, actor, "user.login", "users", user.id, change=None)
            return actor
    # Outside the transaction: the failure count is committed before the refusal is raised.
    raise locked or AuthenticationFailed("Wrong user name or password.")


def unlock(db: Database, actor: Actor, username: str) -> None:
    require(actor, Permission.MANAGE_USERS)
    with db.write() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"No user named '{username}'.")
        before = {"failed_logins": user.failed_logins, "locked_until": user.locked_until}
        user.failed_logins = 0
        user.locked_until = None
        audit.record(
            s,
            actor,
            "user.unlock",
            "users",
            user.id,
            before=before,
            after={"failed_logins": 0, "locked_until": None},
        )


def set_password(db: Database, actor: Actor, username: str, password: str) -> None:
    """Admins set anyone's password; every user may change their own."""
    if actor.username != username:
        require(actor, Permission.MANAGE_USERS)
    _check_password_rules(password)
    with db.write() as s:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"No user named '{username}'.")
        user.password_hash = hash_password(password)
        user.version += 1
        audit.record(s, actor, "user.set_password", "users", user.id)


def list_users(db: Database, actor: Actor) -> list[dict[str, object]]:
    require(actor, Permission.VIEW)
    with db.read() as s:
        return [
            {
                "username": u.username,
                "role": u.role.value,
                "full_name": u.full_name,
                "active": u.is_active,
                "locked": bool(u.locked_until and u.locked_until > utcnow()),
            }
            for u in s.scalars(select(User).order_by(User.username))
        ]


def has_users(db: Database) -> bool:
    with db.read() as s:
        return s.scalar(select(User.id).limit(1)) is not None
