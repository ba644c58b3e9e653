"""What the Operations dialogs add to the panes: files dropped on them, and the settlement queue's context menu.

- Message files dropped on the settlement queue's table go straight into *Import settlement messages*; statement
  files dropped on the break investigation work list into *Import statements* (the dialog shows the progress, the
  result, or the refusal — a role that may not import is told who may).
- The queue's context menu (right click, or the menu key) offers the queue's own actions on the selection, the
  give-up / out-trade behind the current item, raising a new give-up or out-trade, and sending the selection's
  instructions.

Each pane calls one function here (``attach_to_queue`` / ``attach_to_breaks``), so the panes' own modules change by
two lines. Dialogs opened here ask the main window to bring panes forward through the pane's ``open_items``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QMenu

from app.services.permissions import Permission
from app.views.operations.common import FileDropFilter, who_may

if TYPE_CHECKING:
    from app.views.panes.base import Pane


def _show(pane: Pane, dialog: QDialog) -> QDialog:
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    open_pane = getattr(dialog, "open_pane", None)
    if open_pane is not None:
        open_pane.connect(pane.open_items)
    pane.operations_dialog = dialog  # type: ignore[attr-defined]  # the latest one (tests look at it)
    dialog.open()
    return dialog


# --- settlement queue ---------------------------------------------------------------------------------------------


def attach_to_queue(pane: Any) -> None:
    """Drop message files on the queue's table; a context menu on its rows."""
    table = pane.table
    table.setAcceptDrops(True)
    table.viewport().setAcceptDrops(True)
    pane._message_drop = FileDropFilter(lambda files: import_messages(pane, files), pane)
    table.viewport().installEventFilter(pane._message_drop)
    table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    table.customContextMenuRequested.connect(
        lambda pos: queue_menu(pane, pos).popup(table.viewport().mapToGlobal(pos))
    )


def import_messages(pane: Any, files: list[str]) -> QDialog:
    """Import dropped message files at once, in the dialog that shows the progress and the result."""
    from app.views.operations.message_import import MessageImportDialog

    dialog = _show(pane, MessageImportDialog(pane.ws, files, pane))
    dialog.start()  # type: ignore[attr-defined]
    return dialog


def queue_menu(pane: Any, pos: QPoint | None = None) -> QMenu:
    """The context menu of the queue's current row (built fresh: what it offers depends on the row)."""
    from app.services.settlement.actions import ACTION_LABELS
    from app.services.settlement.queue import COL
    from app.views.operations.clearing import (
        GIVE_UP,
        KIND_WORDS,
        OUT_TRADE,
        kind_of_ref,
        may_work,
        raise_entry,
    )

    if pos is not None:
        index = pane.table.indexAt(pos)
        if index.isValid() and not pane.table.selectionModel().isRowSelected(index.row(), index.parent()):
            pane.select_row(index.row())
    menu = QMenu(pane)
    menu.setToolTipsVisible(True)
    ids = pane.selected_ids()
    for action in ("claim", "release", "assign", "escalate", "reinstruct", "cancel"):
        allowed = pane.can_assign if action == "assign" else pane.can_work
        permission = Permission.ASSIGN_WORK if action == "assign" else Permission.WORK_ITEMS
        a = menu.addAction(ACTION_LABELS[action] + ("…" if action != "claim" and action != "release" else ""))
        a.setEnabled(allowed and bool(ids))
        a.setToolTip(
            who_may(permission, pane.ws.actor) if not allowed else f"{ACTION_LABELS[action]} the selection"
        )
        a.triggered.connect(lambda _c=False, x=action: pane.act(x))
    menu.addSeparator()

    current = pane.current_instruction_id()
    row = pane.table.currentIndex().row()
    values = pane.model.row_values(row) if current is not None else None
    ref = str(values[COL["instruction_ref"]]) if values else ""
    kind = kind_of_ref(ref)
    work = menu.addAction("Work the give-up or out-trade…")
    work.setObjectName("workClearingException")
    if kind is None:
        work.setEnabled(False)
        work.setToolTip(
            "Only a GIVE… (give-up) or OUTT… (out-trade) item has one"
            if current is not None
            else "Select an item"
        )
    else:
        work.setText(f"Work the {KIND_WORDS[kind]} {ref}…")
        work.setToolTip(f"Acknowledge, reject, resolve or withdraw the {KIND_WORDS[kind]}")
        if not may_work(pane.ws.actor):
            work.setToolTip(who_may(Permission.WORK_ITEMS, pane.ws.actor) + " You can still look at it.")
        work.triggered.connect(lambda: work_exception(pane, current))
    for k, text in ((GIVE_UP, "Raise a give-up…"), (OUT_TRADE, "Raise an out-trade…")):
        a = QAction(text, menu)
        raise_entry(pane.ws, a, k)
        a.triggered.connect(lambda _c=False, x=k: raise_exception(pane, x))
        menu.addAction(a)
    menu.addSeparator()
    send = menu.addAction(
        f"Send instructions for the {len(ids):,} selected…" if ids else "Send instructions…"
    )
    send.setEnabled(pane.ws.actor.can(Permission.RUN_PROCESSES))
    if not send.isEnabled():
        send.setToolTip(who_may(Permission.RUN_PROCESSES, pane.ws.actor))
    send.triggered.connect(lambda: send_instructions(pane, ids))
    pane.context_menu = menu  # the latest one (tests look at it)
    return menu


def work_exception(pane: Any, instruction_id: int) -> QDialog:
    from app.views.operations.clearing import WorkExceptionDialog

    dialog = _show(pane, WorkExceptionDialog(pane.ws, instruction_id, pane))
    dialog.completed.connect(lambda _r: pane.refresh())  # type: ignore[attr-defined]
    return dialog


def raise_exception(pane: Any, kind: str) -> QDialog:
    from app.views.operations.clearing import RaiseExceptionDialog

    return _show(pane, RaiseExceptionDialog(pane.ws, kind, pane))


def send_instructions(pane: Any, ids: list[int]) -> QDialog:
    from app.views.operations.send_instructions import SendInstructionsDialog

    return _show(pane, SendInstructionsDialog(pane.ws, ids, pane))


# --- break investigation ------------------------------------------------------------------------------------------


def attach_to_breaks(pane: Any) -> None:
    """Drop statement files on the work list to import them."""
    table = pane.table
    table.setAcceptDrops(True)
    table.viewport().setAcceptDrops(True)
    pane._statement_drop = FileDropFilter(lambda files: import_statements(pane, files), pane)
    table.viewport().installEventFilter(pane._statement_drop)
    table.setToolTip("Drop bank, custodian or counterparty statements here to import them")


def import_statements(pane: Any, files: list[str]) -> QDialog:
    from app.views.operations.statement_import import StatementImportDialog

    dialog = _show(pane, StatementImportDialog(pane.ws, files, pane))
    dialog.start()  # type: ignore[attr-defined]
    return dialog
