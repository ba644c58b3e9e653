"""Named blotter views (filter + sort + columns), saved per user in the shared database.

A view is stored under the preference key ``blotter.views.<name>`` as
``{"version": 1, "filter": BlotterFilter.as_dict(), "sort": {"key", "descending"}, "columns": [...]}``, so it
follows the clerk to any workstation. Reading, writing and listing run through the TaskRunner like every other
database call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QInputDialog, QLineEdit, QMenu, QMessageBox, QToolButton, QWidget

from app.services import preferences
from app.services.blotter import SORTABLE, BlotterFilter, Sort
from app.views import resources
from app.views.tasks import TaskFailure, TaskRunner

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor

VIEWS_PREFIX = "blotter.views."
VIEW_VERSION = 1
MAX_NAME = 60


@dataclass(frozen=True)
class SavedView:
    name: str
    filter: BlotterFilter
    sort: Sort
    columns: list[dict[str, Any]] | None

    def payload(self) -> dict[str, Any]:
        return {
            "version": VIEW_VERSION,
            "filter": self.filter.as_dict(),
            "sort": {"key": self.sort.key, "descending": self.sort.descending},
            "columns": self.columns,
        }


def parse_view(name: str, payload: object) -> SavedView | None:
    """A stored view, or None when it is unreadable (written by a newer OpsDesk, or damaged)."""
    if not isinstance(payload, dict) or payload.get("version") != VIEW_VERSION:
        return None
    try:
        flt = BlotterFilter.from_dict(dict(payload.get("filter") or {}))
        raw_sort = payload.get("sort") or {}
        key = str(raw_sort.get("key", "trade_date"))
        sort = Sort(key if key in SORTABLE else "trade_date", bool(raw_sort.get("descending", True)))
    except (TypeError, ValueError):
        return None
    columns = payload.get("columns")
    return SavedView(name, flt, sort, columns if isinstance(columns, list) else None)


def clean_name(name: str) -> str:
    return " ".join(name.split())[:MAX_NAME]


def list_views(db: Database, actor: Actor) -> list[str]:
    return [k[len(VIEWS_PREFIX) :] for k in preferences.keys(db, actor, VIEWS_PREFIX)]


class SavedViewsButton(QToolButton):
    """A "Views" button: pick a saved view, save the current one under a name, delete one.

    ``current`` returns the view on screen (filter, sort, columns); ``apply`` shows a view.
    """

    #: The list of names was (re)read.
    views_listed = Signal(list)
    #: A view was saved (its name), applied (its name) or deleted (its name).
    saved = Signal(str)
    applied = Signal(str)
    deleted = Signal(str)
    #: Something went wrong: the sentence to show.
    failed = Signal(str)

    def __init__(
        self,
        db: Database,
        actor: Actor,
        tasks: TaskRunner,
        current: Callable[[], SavedView],
        apply: Callable[[SavedView], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._db, self._actor, self._tasks = db, actor, tasks
        self._current = current
        self._apply = apply
        self.names: list[str] = []
        self.active: str | None = None
        self.setText("Views")
        self.setIcon(resources.icon("view"))
        self.setToolTip("Your saved views: a filter, a sort and columns under a name")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.menu_ = QMenu(self)
        self.menu_.aboutToShow.connect(self._fill_menu)
        self.setMenu(self.menu_)

    # --- operations (each one background task) ------------------------------------------------------------------

    def reload(self) -> None:
        self._tasks.call(
            list_views,
            self._db,
            self._actor,
            on_done=self._listed,
            on_error=self._failed,
            label="Reading your saved views",
            quiet=True,
            owner=self,
        )

    def save_as(self, name: str) -> None:
        name = clean_name(name)
        if not name:
            return
        view = self._current()
        self._tasks.call(
            preferences.put,
            self._db,
            self._actor,
            VIEWS_PREFIX + name,
            view.payload(),
            on_done=lambda _r: self._saved(name),
            on_error=self._failed,
            label=f"Saving the view {name}",
            owner=self,
        )

    def open_view(self, name: str) -> None:
        self._tasks.call(
            preferences.get,
            self._db,
            self._actor,
            VIEWS_PREFIX + name,
            on_done=lambda payload: self._got(name, payload),
            on_error=self._failed,
            label=f"Opening the view {name}",
            owner=self,
        )

    def delete(self, name: str) -> None:
        self._tasks.call(
            preferences.remove,
            self._db,
            self._actor,
            VIEWS_PREFIX + name,
            on_done=lambda _r: self._deleted(name),
            on_error=self._failed,
            label=f"Deleting the view {name}",
            owner=self,
        )

    # --- results ------------------------------------------------------------------------------------------------

    def _listed(self, names: object) -> None:
        assert isinstance(names, list)
        self.set_names(names)

    def set_names(self, names: list[str]) -> None:
        """The saved views' names (read by the pane with its other settings, or by reload)."""
        self.names = [str(n) for n in names]
        self.views_listed.emit(self.names)

    def _saved(self, name: str) -> None:
        if name not in self.names:
            self.names = sorted([*self.names, name])
        self.active = name
        self._show_active()
        self.saved.emit(name)

    def _got(self, name: str, payload: object) -> None:
        view = parse_view(name, payload)
        if view is None:
            self.failed.emit(f"The view {name} cannot be read (it was saved by another OpsDesk version).")
            return
        self.active = name
        self._show_active()
        self._apply(view)
        self.applied.emit(name)

    def _deleted(self, name: str) -> None:
        self.names = [n for n in self.names if n != name]
        if self.active == name:
            self.active = None
            self._show_active()
        self.deleted.emit(name)

    def _failed(self, failure: TaskFailure) -> None:
        self.failed.emit(failure.message)

    def forget_active(self) -> None:
        """The user changed the filter or sort: the view on screen is no longer the saved one."""
        if self.active is not None:
            self.active = None
            self._show_active()

    def _show_active(self) -> None:
        self.setText(f"View: {self.active}" if self.active else "Views")

    # --- menu ---------------------------------------------------------------------------------------------------

    def _fill_menu(self) -> None:
        menu = self.menu_
        menu.clear()
        if not self.names:
            empty = menu.addAction("No saved views yet")
            empty.setEnabled(False)
        for name in self.names:
            action = menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(name == self.active)
            action.triggered.connect(lambda _c=False, n=name: self.open_view(n))
        menu.addSeparator()
        menu.addAction(resources.icon("view"), "Save current view as…", self._ask_name)
        if self.names:
            delete_menu = menu.addMenu("Delete view")
            for name in self.names:
                delete_menu.addAction(name, lambda n=name: self._confirm_delete(n))

    def _ask_name(self) -> None:
        name, ok = QInputDialog.getText(
            self, "Save view", "Name of the view:", QLineEdit.EchoMode.Normal, self.active or ""
        )
        if ok and clean_name(name):
            self.save_as(name)

    def _confirm_delete(self, name: str) -> None:
        answer = QMessageBox.question(self, "Delete view", f"Delete the saved view {name}?")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete(name)
