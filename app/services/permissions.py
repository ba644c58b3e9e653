"""Who may do what. Every service call that reads or changes business data checks here first.

Roles: clerks work exceptions; supervisors also approve, assign and edit rules; admins manage users and reference
data; auditors see everything and change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.models.enums import Role

from .errors import PermissionDenied


class Permission(StrEnum):
    VIEW = "view"
    SAVE_PREFERENCES = "save preferences"
    IMPORT = "import files and messages"
    REPAIR_TRADE = "repair trades"
    CLAIM = "claim work items"
    WORK_ITEMS = "work exceptions"
    PROPOSE_CORRECTION = "propose corrections"
    APPROVE_CORRECTION = "approve corrections"
    ASSIGN_WORK = "assign work to others"
    EDIT_RULES = "edit recon and SLA rules"
    RUN_PROCESSES = "run reconciliations and settlement processes"
    MANAGE_REFERENCE = "manage reference data"
    MANAGE_USERS = "manage users"
    BUILD_DEMO = "build the demo book"


_ALL = frozenset(Role)
_WORKERS = frozenset({Role.CLERK, Role.SUPERVISOR})

GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.VIEW: _ALL,
    # Window layout and saved views are the user's own, not business data: an auditor may arrange their screen.
    Permission.SAVE_PREFERENCES: _ALL,
    Permission.IMPORT: frozenset({Role.CLERK, Role.SUPERVISOR, Role.ADMIN}),
    Permission.REPAIR_TRADE: _WORKERS,
    Permission.CLAIM: _WORKERS,
    Permission.WORK_ITEMS: _WORKERS,
    Permission.PROPOSE_CORRECTION: _WORKERS,
    Permission.APPROVE_CORRECTION: frozenset({Role.SUPERVISOR}),
    Permission.ASSIGN_WORK: frozenset({Role.SUPERVISOR}),
    Permission.EDIT_RULES: frozenset({Role.SUPERVISOR, Role.ADMIN}),
    Permission.RUN_PROCESSES: frozenset({Role.CLERK, Role.SUPERVISOR, Role.ADMIN}),
    Permission.MANAGE_REFERENCE: frozenset({Role.SUPERVISOR, Role.ADMIN}),
    Permission.MANAGE_USERS: frozenset({Role.ADMIN}),
    Permission.BUILD_DEMO: frozenset({Role.ADMIN}),
}


@dataclass(frozen=True)
class Actor:
    """The signed-in user a service call acts for."""

    user_id: int | None
    username: str
    role: Role
    timezone: str = "UTC"

    def can(self, permission: Permission) -> bool:
        return self.role in GRANTS[permission]


# Acts for the system itself (schema setup, bootstrap of the first admin, demo build run from a script).
SYSTEM = Actor(user_id=None, username="system", role=Role.ADMIN)


def require(actor: Actor, permission: Permission) -> None:
    """Raise PermissionDenied unless ``actor``'s role grants ``permission``."""
    if not actor.can(permission):
        raise PermissionDenied(
            f"{actor.username} ({actor.role.value}) may not {permission.value}; "
            f"this needs the role {' or '.join(sorted(r.value for r in GRANTS[permission]))}."
        )
