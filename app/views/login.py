"""The log-in dialog. It also opens the database: checks it answers, upgrades its schema, and sees whether it has users.

All of that, the password check included, runs through the TaskRunner, so the dialog stays responsive on a slow VPN
and shows a sentence for every refusal: wrong password, locked account, database unreachable, schema too new.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.services import auth, schema
from app.services.errors import DatabaseUnavailable, SchemaTooNew
from app.views import resources
from app.views.tasks import TaskContext, TaskFailure, TaskHandle, TaskRunner

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor

NO_USERS_MESSAGE = (
    'This database has no users yet. Build the demo book with "opsdesk demo", '
    'or add the first user with "opsdesk user add".'
)


def _prepare(_ctx: TaskContext, db: Database, upgrade_schema: bool) -> bool:
    """Worker: make sure the database answers and has our schema; True if it has at least one user."""
    if not db.ping():
        raise DatabaseUnavailable(
            "The database cannot be reached. Check the network or VPN connection, then press Sign in to try again."
        )
    if upgrade_schema:
        schema.ensure_current(db)
    return auth.has_users(db)


def _sign_in(
    ctx: TaskContext, db: Database, username: str, password: str, prepare_first: bool, upgrade_schema: bool
) -> tuple[Actor, bool | None]:
    """Worker: (re)open the database if the first attempt failed, then check the password."""
    has_users = _prepare(ctx, db, upgrade_schema) if prepare_first else None
    return auth.login(db, username, password), has_users


class LoginDialog(QDialog):
    """Ask for a user name and password; ``actor`` is set when the dialog is accepted."""

    #: The database is open and checked (schema up to date, users counted); tests and scripts wait for it.
    ready = Signal()
    #: A refusal that no retry can fix (the schema is newer than this OpsDesk); run_gui exits with code 3.
    fatal = Signal(str)
    signed_in = Signal(object)

    FATAL = 3  # the dialog's result code when ``fatal`` was emitted

    def __init__(
        self,
        db: Database,
        tasks: TaskRunner,
        *,
        username: str = "",
        password: str = "",
        upgrade_schema: bool = True,
        auto_submit: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.db = db
        self.tasks = tasks
        self.upgrade_schema = upgrade_schema
        self.auto_submit = auto_submit
        self.actor: Actor | None = None
        self.fatal_message: str | None = None
        self.has_users: bool | None = None
        self.prepared = False
        self._task: TaskHandle | None = None

        self.setObjectName("loginDialog")
        self.setWindowTitle("Sign in – OpsDesk")
        self.setWindowIcon(resources.icon("app"))
        self.setModal(True)
        self.setFixedWidth(460)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)

        banner = QFrame()
        banner.setObjectName("loginBanner")
        banner.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        banner_row = QHBoxLayout(banner)
        banner_row.setContentsMargins(24, 18, 24, 18)
        banner_row.setSpacing(14)
        logo = QLabel()
        logo.setPixmap(resources.pixmap("app", 44))
        banner_row.addWidget(logo)
        titles = QVBoxLayout()
        titles.setSpacing(0)
        title = QLabel("OpsDesk")
        title.setObjectName("loginTitle")
        tagline = QLabel("Back-office operations workstation")
        tagline.setObjectName("loginTagline")
        titles.addWidget(title)
        titles.addWidget(tagline)
        banner_row.addLayout(titles, 1)
        outer.addWidget(banner)

        body = QVBoxLayout()
        body.setContentsMargins(24, 20, 24, 20)
        body.setSpacing(14)
        outer.addLayout(body)

        form = QFormLayout()
        form.setHorizontalSpacing(14)
        form.setVerticalSpacing(10)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.username_edit = QLineEdit(username)
        self.username_edit.setPlaceholderText("e.g. jsmith")
        self.username_edit.setAccessibleName("User name")
        self.password_edit = QLineEdit(password)
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setAccessibleName("Password")
        form.addRow("&User name", self.username_edit)
        form.addRow("&Password", self.password_edit)
        body.addLayout(form)

        db_row = QHBoxLayout()
        db_row.setSpacing(0)
        self.database_label = QLabel()
        self.database_label.setObjectName("databaseLine")
        self.database_label.setTextFormat(Qt.TextFormat.PlainText)
        self.database_label.setToolTip(db.description)
        self.database_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.database_label.setText(self._elided(f"Database: {db.description}"))
        db_row.addWidget(self.database_label, 1)
        body.addLayout(db_row)

        self.message_label = QLabel()
        self.message_label.setObjectName("messageLine")
        self.message_label.setTextFormat(Qt.TextFormat.PlainText)  # service sentences are text, never HTML
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message_label.setMinimumHeight(self.message_label.fontMetrics().lineSpacing() * 2)
        self.message_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        body.addWidget(self.message_label)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.quit_button = QPushButton("Quit")
        self.quit_button.setAutoDefault(False)
        self.quit_button.clicked.connect(self.reject)
        self.sign_in_button = QPushButton("Sign in")
        self.sign_in_button.setProperty("primary", True)
        self.sign_in_button.setDefault(True)
        self.sign_in_button.setShortcut(QKeySequence("Ctrl+Return"))
        self.sign_in_button.clicked.connect(self.submit)
        buttons.addWidget(self.quit_button)
        buttons.addWidget(self.sign_in_button)
        body.addLayout(buttons)

        (self.password_edit if username else self.username_edit).setFocus()
        self._start_prepare()

    # --- state shown to the user --------------------------------------------------------------------------------

    @property
    def message(self) -> str:
        return self.message_label.text()

    @property
    def busy(self) -> bool:
        return self._task is not None

    def _say(self, text: str, tone: str = "info") -> None:
        self.message_label.setText(text)
        resources.set_style_property(self.message_label, "tone", tone)
        # The width is fixed; grow or shrink the height so a long refusal is read whole, never cut off.
        self.adjustSize()

    def _set_busy(self, busy: bool) -> None:
        for w in (self.username_edit, self.password_edit, self.sign_in_button):
            w.setEnabled(not busy)

    def _elided(self, text: str) -> str:
        return self.database_label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideMiddle, 400)

    # --- opening the database -----------------------------------------------------------------------------------

    def _start_prepare(self) -> None:
        self._say(f"Opening {self.db.description}…")
        self.sign_in_button.setEnabled(False)
        self._task = self.tasks.run(
            _prepare,
            self.db,
            self.upgrade_schema,
            on_done=self._prepared,
            on_error=self._prepare_failed,
            label="Opening the database",
            owner=self,
        )

    def _prepared(self, has_users: object) -> None:
        self._task = None
        self.prepared = True
        self.has_users = bool(has_users)
        self.sign_in_button.setEnabled(True)
        self._say("" if self.has_users else NO_USERS_MESSAGE)
        self.ready.emit()
        if self.auto_submit and self.username_edit.text() and self.password_edit.text():
            self.submit()

    def _prepare_failed(self, failure: TaskFailure) -> None:
        self._task = None
        if self._is_fatal(failure):
            return
        # Unreachable or another problem: say so and let Sign in try the whole thing again.
        self.sign_in_button.setEnabled(True)
        self._say(failure.message, "bad")

    def _is_fatal(self, failure: TaskFailure) -> bool:
        if isinstance(failure.error, SchemaTooNew):
            self.fatal_message = failure.message
            self._say(failure.message, "bad")
            self.fatal.emit(failure.message)
            self.done(self.FATAL)
            return True
        return False

    # --- signing in ---------------------------------------------------------------------------------------------

    def submit(self) -> None:
        """Check the user name and password on a worker thread; the dialog is disabled until the answer."""
        if self._task is not None:
            return
        username = self.username_edit.text().strip()
        password = self.password_edit.text()
        if not username:
            self._say("Enter your user name.", "bad")
            self.username_edit.setFocus()
            return
        if not password:
            self._say("Enter your password.", "bad")
            self.password_edit.setFocus()
            return
        self._set_busy(True)
        self._say(f"Signing in as {username}…")
        self._task = self.tasks.run(
            _sign_in,
            self.db,
            username,
            password,
            not self.prepared,
            self.upgrade_schema,
            on_done=self._signed_in,
            on_error=self._sign_in_failed,
            on_cancelled=self._cancelled,
            label="Signing in",
            owner=self,
        )

    def _signed_in(self, result: object) -> None:
        self._task = None
        assert isinstance(result, tuple)
        actor, has_users = result
        if has_users is not None:
            self.prepared, self.has_users = True, has_users
        self.actor = actor
        self._say("")
        self.signed_in.emit(actor)
        self.accept()

    def _sign_in_failed(self, failure: TaskFailure) -> None:
        self._task = None
        if self._is_fatal(failure):
            return
        self._set_busy(False)
        self._say(failure.message, "bad")
        if not failure.unavailable:
            # A wrong password is retyped, not edited: clear it and put the cursor there.
            self.password_edit.clear()
            self.password_edit.setFocus()

    def _cancelled(self) -> None:
        self._task = None
        self._set_busy(False)

    def done(self, result: int) -> None:
        # Closing while a check runs: drop its answer, it must not sign anybody in after the dialog is gone.
        if self._task is not None:
            self._task.cancel()
            self._task = None
        super().done(result)
