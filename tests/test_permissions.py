"""Every role gets exactly what it needs; the auditor changes nothing."""

from __future__ import annotations

import pytest

from app.models.enums import Role
from app.services.errors import PermissionDenied
from app.services.permissions import GRANTS, Actor, Permission, require

EXPECTED = {
    Role.CLERK: {
        Permission.VIEW,
        Permission.SAVE_PREFERENCES,
        Permission.IMPORT,
        Permission.REPAIR_TRADE,
        Permission.CLAIM,
        Permission.WORK_ITEMS,
        Permission.PROPOSE_CORRECTION,
        Permission.RUN_PROCESSES,
    },
    Role.SUPERVISOR: {
        Permission.VIEW,
        Permission.SAVE_PREFERENCES,
        Permission.IMPORT,
        Permission.REPAIR_TRADE,
        Permission.CLAIM,
        Permission.WORK_ITEMS,
        Permission.PROPOSE_CORRECTION,
        Permission.APPROVE_CORRECTION,
        Permission.ASSIGN_WORK,
        Permission.EDIT_RULES,
        Permission.RUN_PROCESSES,
        Permission.MANAGE_REFERENCE,
    },
    Role.ADMIN: {
        Permission.VIEW,
        Permission.SAVE_PREFERENCES,
        Permission.IMPORT,
        Permission.EDIT_RULES,
        Permission.RUN_PROCESSES,
        Permission.MANAGE_REFERENCE,
        Permission.MANAGE_USERS,
        Permission.BUILD_DEMO,
    },
    Role.AUDITOR: {Permission.VIEW, Permission.SAVE_PREFERENCES},
}


@pytest.mark.parametrize("role", list(Role))
def test_role_grants(role: Role) -> None:
    actor = Actor(user_id=1, username=f"a-{role.value}", role=role)
    granted = {p for p in Permission if actor.can(p)}
    assert granted == EXPECTED[role]
    for p in set(Permission) - granted:
        with pytest.raises(PermissionDenied) as err:
            require(actor, p)
        assert role.value in str(err.value) and p.value in str(err.value)


def test_every_permission_is_granted_to_someone() -> None:
    assert set(GRANTS) == set(Permission)
    assert all(GRANTS[p] for p in Permission)


def test_only_supervisors_approve() -> None:
    assert GRANTS[Permission.APPROVE_CORRECTION] == frozenset({Role.SUPERVISOR})
