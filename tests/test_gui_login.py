"""The log-in dialog: signs in, refuses with the service's sentence, locks out, and opens the database safely.

Every check happens on a worker thread through the TaskRunner; the tests drive the dialog as a user would (type,
press Sign in) and wait for the answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot
from sqlalchemy import text

from app.services import auth
from app.services.db import Database
from app.services.permissions import Actor
from app.views.login import NO_USERS_MESSAGE, LoginDialog
from app.views.tasks import TaskRunner

from .conftest import PASSWORD

sqlite_only = pytest.mark.parametrize("db", ["sqlite"], indirect=True)


def open_dialog(qtbot: QtBot, db: Database, tasks: TaskRunner, **options: object) -> LoginDialog:
    dialog = LoginDialog(db, tasks, **options)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: not dialog.busy)
    return dialog


def sign_in(qtbot: QtBot, dialog: LoginDialog, username: str, password: str) -> None:
    dialog.username_edit.clear()
    qtbot.keyClicks(dialog.username_edit, username)
    dialog.password_edit.clear()
    qtbot.keyClicks(dialog.password_edit, password)
    qtbot.mouseClick(dialog.sign_in_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.busy)


def test_sign_in_accepts_the_dialog_with_the_signed_in_actor(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner
) -> None:
    dialog = open_dialog(qtbot, db, tasks)
    assert dialog.has_users is True
    with qtbot.waitSignal(dialog.accepted, timeout=10_000):
        sign_in(qtbot, dialog, "clerk1", PASSWORD)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.actor is not None
    assert (dialog.actor.username, dialog.actor.role.value) == ("clerk1", "clerk")


def test_wrong_password_is_refused_with_a_clear_message_and_the_dialog_stays(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner
) -> None:
    dialog = open_dialog(qtbot, db, tasks)
    sign_in(qtbot, dialog, "clerk1", "not-the-password")
    assert dialog.message == "Wrong user name or password."
    assert dialog.isVisible() and dialog.actor is None
    # Ready for the next attempt: enabled again, password cleared, user name kept.
    assert dialog.sign_in_button.isEnabled() and dialog.password_edit.isEnabled()
    assert dialog.password_edit.text() == ""
    assert dialog.username_edit.text() == "clerk1"


@sqlite_only
def test_the_dialog_is_disabled_while_the_password_is_checked(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner
) -> None:
    dialog = open_dialog(qtbot, db, tasks, username="clerk1")
    qtbot.keyClicks(dialog.password_edit, PASSWORD)
    qtbot.mouseClick(dialog.sign_in_button, Qt.MouseButton.LeftButton)
    # The check is on its way to a worker; until it answers nothing can be pressed twice.
    assert not dialog.sign_in_button.isEnabled()
    assert not dialog.username_edit.isEnabled() and not dialog.password_edit.isEnabled()
    assert dialog.message.startswith("Signing in as clerk1")
    qtbot.waitUntil(lambda: dialog.actor is not None)


@sqlite_only
def test_repeated_failures_lock_the_account_and_the_dialog_says_so(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner
) -> None:
    dialog = open_dialog(qtbot, db, tasks)
    for _ in range(auth.MAX_FAILED_LOGINS - 1):
        sign_in(qtbot, dialog, "clerk2", "guess-again-1")
        assert dialog.message == "Wrong user name or password."
    sign_in(qtbot, dialog, "clerk2", "guess-again-1")
    assert dialog.message.startswith("Too many failed log-ins: the account 'clerk2' is locked until")
    # Even the right password is refused while locked, with the reason and what to do.
    sign_in(qtbot, dialog, "clerk2", PASSWORD)
    assert "locked" in dialog.message and "Ask an administrator" in dialog.message
    assert dialog.actor is None


@sqlite_only
def test_the_dialog_shows_which_database_it_connects_to(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner
) -> None:
    dialog = open_dialog(qtbot, db, tasks)
    assert dialog.database_label.toolTip() == db.description
    assert dialog.database_label.text().startswith("Database: SQLite")


def test_an_empty_database_tells_the_user_how_to_create_users(
    qtbot: QtBot, sqlite_db: Database, tasks: TaskRunner
) -> None:
    dialog = open_dialog(qtbot, sqlite_db, tasks)
    assert dialog.has_users is False
    assert dialog.message == NO_USERS_MESSAGE
    assert "opsdesk demo" in dialog.message and "opsdesk user add" in dialog.message


def test_an_unreachable_database_is_reported_and_sign_in_retries(
    qtbot: QtBot, tmp_path: Path, tasks: TaskRunner
) -> None:
    missing = tmp_path / "no-such-dir" / "opsdesk.sqlite"
    db = Database(f"sqlite:///{missing}")
    try:
        dialog = open_dialog(qtbot, db, tasks)
        assert "cannot be reached" in dialog.message
        assert dialog.sign_in_button.isEnabled()
        sign_in(qtbot, dialog, "clerk1", PASSWORD)
        assert "cannot be reached" in dialog.message
        assert dialog.actor is None and dialog.isVisible()
    finally:
        db.dispose()


def test_a_schema_newer_than_this_opsdesk_is_fatal(
    qtbot: QtBot, sqlite_db: Database, tasks: TaskRunner
) -> None:
    with sqlite_db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeedbeef'"))
    dialog = LoginDialog(sqlite_db, tasks)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.fatal, timeout=10_000) as signal:
        dialog.show()
    assert "newer OpsDesk" in signal.args[0]
    assert dialog.result() == LoginDialog.FATAL
    assert dialog.fatal_message == signal.args[0]
