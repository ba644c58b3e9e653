"""What every pane shares: a header, a refresh that runs through the TaskRunner, and change-feed awareness.

A pane loads only while it is on screen: a pane behind another tab just marks itself stale when the change feed
reports one of its entity types, and loads when the clerk brings it forward. With five panes docked as tabs, one
query runs instead of five. (Qt keeps every tabbed dock "visible"; the dock's visibilityChanged signal is what says
which tab is in front, and the main window forwards it to :meth:`Pane.set_on_screen`.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QShowEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.views import resources
from app.views.qt_models.status_counts import ShareRole
from app.views.tasks import TaskContext, TaskFailure, TaskHandle, TaskRunner

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor


@dataclass
class Workspace:
    """What a pane needs to do its work: who is signed in, to which database, and the shared task runner."""

    db: Database
    actor: Actor
    tasks: TaskRunner


class Pane(QWidget):
    """Base of the docked panes. Subclasses set the class attributes and implement ``loader`` and ``present``."""

    #: Stable id: the dock's object name (saved layouts refer to it, so never rename one).
    pane_id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    subtitle: ClassVar[str] = ""
    icon_name: ClassVar[str] = ""
    #: Change-feed entity types that make this pane stale.
    entity_types: ClassVar[frozenset[str]] = frozenset()
    #: One line on what the full pane will do (shown while the pane is a summary).
    coming_next: ClassVar[str] = ""

    #: A load finished and is on screen (tests wait for it; the main window's "usable" moment).
    refreshed = Signal()
    #: A transient message for the status bar.
    message = Signal(str)
    #: Ask the main window to bring pane ``pane_id`` forward showing exactly these items (an SLA tile, a linked
    #: instruction in a detail panel ...). ``criteria`` is the target pane's :meth:`drill_down` argument.
    open_items = Signal(str, dict)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ws = workspace
        self.setObjectName("pane")
        # Custom QWidget subclasses paint a stylesheet background only with this attribute.
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.stale = True
        self._on_screen: bool | None = None  # None: not in a dock, follow isVisible()
        self.loaded_at: dt.datetime | None = None
        self._task: TaskHandle | None = None
        self._again = False

        outer = QVBoxLayout(self)
        outer.setContentsMargins(18, 14, 18, 14)
        outer.setSpacing(12)

        header = QHBoxLayout()
        header.setSpacing(10)
        icon = QLabel()
        icon.setPixmap(resources.pixmap(self.icon_name, 32))
        icon.setFixedSize(36, 36)
        header.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        titles = QVBoxLayout()
        titles.setSpacing(0)
        title = QLabel(self.title)
        title.setObjectName("paneTitle")
        subtitle = QLabel(self.subtitle)
        subtitle.setObjectName("paneSubtitle")
        titles.addWidget(title)
        titles.addWidget(subtitle)
        header.addLayout(titles, 1)
        self.updated_label = QLabel("Loading…")
        self.updated_label.setObjectName("muted")
        header.addWidget(self.updated_label, 0, Qt.AlignmentFlag.AlignVCenter)
        self.refresh_button = QToolButton()
        self.refresh_button.setIcon(resources.icon("refresh"))
        self.refresh_button.setToolTip(f"Reload the {self.title.lower()} (F5)")
        self.refresh_button.setAccessibleName(f"Refresh {self.title}")
        self.refresh_button.clicked.connect(self.refresh)
        header.addWidget(self.refresh_button, 0, Qt.AlignmentFlag.AlignVCenter)
        outer.addLayout(header)

        self.error_label = QLabel()
        self.error_label.setObjectName("paneError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        outer.addWidget(self.error_label)

        self.body = QVBoxLayout()
        self.body.setSpacing(12)
        outer.addLayout(self.body, 1)

        if self.coming_next:
            note = QLabel(f"<b>Coming next:</b> {self.coming_next}")
            note.setObjectName("comingNext")
            note.setWordWrap(True)
            outer.addWidget(note)

    # --- what subclasses provide --------------------------------------------------------------------------------

    def drill_down(self, criteria: dict[str, Any]) -> None:
        """Show the items ``criteria`` names, replacing the pane's filter until the user clears it.

        Keys every pane understands: ``ids`` (the exact items: trade, instruction, break or correction ids) and
        ``title`` (a short caption saying where the list came from, e.g. "SLA breached: instruction cut-off").
        A pane may accept its own filter fields besides (status, dates ...). The base does nothing beyond showing
        the pane, which the main window has already done.
        """

    def loader(self) -> Callable[[TaskContext], Any]:
        """A function to run on the worker thread. Capture plain values (db, actor), never widgets."""
        raise NotImplementedError

    def present(self, result: Any) -> None:
        """Show a load's result (GUI thread)."""
        raise NotImplementedError

    # --- loading ------------------------------------------------------------------------------------------------

    @property
    def loading(self) -> bool:
        return self._task is not None

    def refresh(self) -> None:
        """Reload now; a refresh asked for while one runs is folded into one more load after it."""
        if self._task is not None:
            self._again = True
            return
        self.refresh_button.setEnabled(False)
        self._task = self.ws.tasks.run(
            self.loader(),
            on_done=self._loaded,
            on_error=self._failed,
            on_cancelled=self._cancelled,
            label=f"Loading the {self.title.lower()}",
            owner=self,
        )

    @property
    def on_screen(self) -> bool:
        """Shown and not covered by another tab."""
        return self.isVisible() and self._on_screen is not False

    def set_on_screen(self, on_screen: bool) -> None:
        """Slot for QDockWidget.visibilityChanged: the pane's tab came to the front (or went behind)."""
        self._on_screen = on_screen
        if on_screen and self.stale:
            self.refresh()

    def mark_stale(self) -> None:
        """Something changed: reload now if on screen, otherwise when next brought forward."""
        self.stale = True
        if self.on_screen:
            self.refresh()

    def on_changed(self, entity_types: list[str]) -> None:
        """Slot for ChangeFeed.changed."""
        if self.entity_types.intersection(entity_types):
            self.mark_stale()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.stale and self.on_screen:
            self.refresh()

    def _loaded(self, result: Any) -> None:
        self._task = None
        self.refresh_button.setEnabled(True)
        self.stale = False
        self.error_label.hide()
        self.loaded_at = dt.datetime.now().astimezone()
        self.updated_label.setText(f"Updated {self.loaded_at:%H:%M:%S}")
        self.present(result)
        self.refreshed.emit()
        self._maybe_again()

    def _failed(self, failure: TaskFailure) -> None:
        self._task = None
        self.refresh_button.setEnabled(True)
        # Stay stale so the next show, feed event or reconnection tries again; keep the last good figures visible.
        self.stale = True
        self.error_label.setText(f"Could not refresh: {failure.message}")
        self.error_label.show()
        self.updated_label.setText("Not up to date" if self.loaded_at else "Not loaded")
        self._maybe_again()

    def _cancelled(self) -> None:
        self._task = None
        self.refresh_button.setEnabled(True)
        self._maybe_again()

    def _maybe_again(self) -> None:
        if self._again:
            self._again = False
            # A load that ends while the window closes (its task runner already shut down) asks for nothing more.
            if not self.ws.tasks.closed:
                self.refresh()


class Card(QFrame):
    """A headline figure: a big number and a caption, with a coloured edge for its tone (ok, warn, bad, info)."""

    def __init__(self, caption: str, hint: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.setProperty("tone", "neutral")
        self.setToolTip(hint)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(130)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.setSpacing(2)
        self.value_label = QLabel("–")
        self.value_label.setObjectName("cardValue")
        self.caption_label = QLabel(caption)
        self.caption_label.setObjectName("cardLabel")
        layout.addWidget(self.value_label)
        layout.addWidget(self.caption_label)

    @property
    def value(self) -> str:
        return self.value_label.text()

    def set_value(self, value: int, tone: str) -> None:
        self.value_label.setText(f"{value:,}")
        resources.set_style_property(self, "tone", tone)


class ShareBarDelegate(QStyledItemDelegate):
    """Paints a row's share of the total as a faint bar behind the percentage: proportions at a glance."""

    BAR = QColor("#dbe7f7")

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        share = index.data(ShareRole)
        if isinstance(share, float) and share > 0 and not (option.state & QStyle.StateFlag.State_Selected):
            rect: QRect = option.rect.adjusted(4, 5, -4, -5)
            rect.setWidth(max(2, int(rect.width() * min(share, 1.0))))
            painter.save()
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(self.BAR)
            painter.drawRoundedRect(rect, 3, 3)
            painter.restore()
        super().paint(painter, option, index)
