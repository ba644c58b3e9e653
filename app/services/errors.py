"""Typed domain errors. Their message is written for the clerk who will read it in a dialog or the CLI."""

from __future__ import annotations


class OpsDeskError(Exception):
    """Base of every error a user may see. ``str(err)`` is the sentence to show."""

    exit_code = 1


class PermissionDenied(OpsDeskError):
    pass


class NotFound(OpsDeskError):
    pass


class ValidationFailed(OpsDeskError):
    """Input refused; ``problems`` lists (location, field, reason) when there is more than one."""

    def __init__(self, message: str, problems: list[tuple[str, str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class AuthenticationFailed(OpsDeskError):
    pass


class AccountLocked(AuthenticationFailed):
    pass


class AlreadyClaimed(OpsDeskError):
    """Somebody else owns the item; the claim lost the race or came too late."""


class StaleEdit(OpsDeskError):
    """The row changed since the user loaded it: ``changed by X at T; reload``."""


class InvalidTransition(OpsDeskError):
    pass


class DatabaseUnavailable(OpsDeskError):
    """The database cannot be reached (VPN down, server restarting). Nothing was changed; try again."""

    exit_code = 3


class SchemaTooNew(OpsDeskError):
    """The database was upgraded by a newer OpsDesk than this one."""

    exit_code = 3
