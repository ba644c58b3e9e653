"""The main window's Operations menu: one entry per process that has no pane of its own.

Entries the signed-in role may not use are disabled with a tooltip saying who may (the menu shows tooltips). The
dialog modules are imported when an entry is chosen, not at start-up: the window opens as fast as before. Every
dialog is window-modal, deletes itself when closed, and asks the window to bring a pane forward through
``open_pane`` -> :meth:`MainWindow.open_items` (the break list after a reconciliation run, the queue after a
generation or a give-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QMenu

from app.services.permissions import Permission
from app.views import resources
from app.views.operations.common import guard

if TYPE_CHECKING:
    from app.views.main_window import MainWindow

#: key -> (menu text, module, class, permission or None, tooltip, icon, shortcut)
ENTRIES: tuple[tuple[str, str, str, str, Permission | None, str, str, str], ...] = (
    (
        "import_messages",
        "Import settlement &messages…",
        "message_import",
        "MessageImportDialog",
        Permission.IMPORT,
        "Import MT544–548, sese.024/025 and custodian CSV status and confirmation files",
        "import",
        "Ctrl+Shift+M",
    ),
    (
        "send_instructions",
        "&Send instructions…",
        "send_instructions",
        "SendInstructionsDialog",
        Permission.RUN_PROCESSES,
        "Write MT540–543 or sese.023 for instructed items into a folder",
        "export",
        "",
    ),
    (
        "generate_instructions",
        "&Generate settlement instructions…",
        "generate_instructions",
        "GenerateInstructionsDialog",
        Permission.RUN_PROCESSES,
        "Instruct every validated trade that has no instruction yet, netted or gross",
        "settlement_queue",
        "",
    ),
    (
        "accrue_penalties",
        "&Accrue penalties…",
        "accrue_penalties",
        "AccruePenaltiesDialog",
        Permission.RUN_PROCESSES,
        "Accrue the daily CSDR penalties of failing items up to a date",
        "exception",
        "",
    ),
    ("-", "", "", "", None, "", "", ""),
    (
        "import_statements",
        "Import s&tatements…",
        "statement_import",
        "StatementImportDialog",
        Permission.IMPORT,
        "Import MT940/942/950, camt.052/053/054, MT535, semt.002 and CSV/XLSX statements",
        "import",
        "Ctrl+Shift+T",
    ),
    (
        "run_recon",
        "&Run reconciliation…",
        "recon_run",
        "RunReconDialog",
        Permission.RUN_PROCESSES,
        "Run a recon definition as of a date and show its breaks",
        "break_investigation",
        "",
    ),
    (
        "reconcile_files",
        "Reconcile two &files…",
        "recon_files",
        "ReconcileFilesDialog",
        None,
        "Compare two CSV/XLSX files on key columns, with tolerances; no database needed",
        "view",
        "",
    ),
    (
        "recon_definitions",
        "Recon &definitions…",
        "recon_definitions",
        "ReconDefinitionsDialog",
        None,  # everyone may look; only EDIT_RULES may save (the dialog's Save says so)
        "The reconciliations' keys, tolerances and passes (supervisors edit)",
        "filter",
        "",
    ),
    (
        "sla_rules",
        "S&LA rules…",
        "sla_rules",
        "SlaRulesDialog",
        None,  # everyone may look; only EDIT_RULES may save (the dialog's Save says so)
        "Each SLA's deadline rule, warning window and activity (supervisors edit)",
        "filter",
        "",
    ),
    (
        "approval_thresholds",
        "Approval t&hresholds…",
        "approval_thresholds",
        "ApprovalThresholdsDialog",
        None,  # everyone may look; only supervisors may set (the dialog says so)
        "The amounts above which a correction needs a second approver",
        "approve",
        "",
    ),
    ("-", "", "", "", None, "", "", ""),
    (
        "raise_give_up",
        "Raise a futures &give-up…",
        "clearing",
        "RaiseExceptionDialog",
        None,
        "",
        "exception",
        "",
    ),
    (
        "raise_out_trade",
        "Raise an &out-trade…",
        "clearing",
        "RaiseExceptionDialog",
        None,
        "",
        "exception",
        "",
    ),
)


def build_operations_menu(window: MainWindow) -> tuple[QMenu, dict[str, QAction]]:
    """Add the Operations menu to ``window``'s menu bar; returns it and its actions by key."""
    menu = window.menuBar().addMenu("&Operations")
    menu.setToolTipsVisible(True)
    actions: dict[str, QAction] = {}
    actor = window.actor
    for key, text, module, cls, permission, tip, icon, shortcut in ENTRIES:
        if key == "-":
            menu.addSeparator()
            continue
        action = QAction(resources.icon(icon), text, window)
        action.setObjectName(f"operations.{key}")
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if key == "recon_definitions" and not actor.can(Permission.EDIT_RULES):
            tip += " — you may look; saving needs the role supervisor or admin"
        if key.startswith("raise_"):
            from app.views.operations.clearing import GIVE_UP, OUT_TRADE, raise_entry

            raise_entry(window.workspace, action, GIVE_UP if key == "raise_give_up" else OUT_TRADE)
        elif permission is not None:
            guard(action, actor, permission, tip)
        else:
            action.setToolTip(tip)
        action.setStatusTip(action.toolTip())
        action.triggered.connect(lambda _c=False, k=key, m=module, c=cls: open_operation(window, k, m, c))
        menu.addAction(action)
        actions[key] = action
    return menu, actions


def open_operation(window: MainWindow, key: str, module: str, cls: str) -> QDialog:
    """Open the dialog of an Operations entry over ``window``."""
    dialog_cls: Any = getattr(importlib.import_module(f"app.views.operations.{module}"), cls)
    if key == "send_instructions":
        queue = window.panes.peek("settlement_queue")
        selected = queue.selected_ids() if queue is not None and queue.on_screen else []  # type: ignore[attr-defined]
        dialog = dialog_cls(window.workspace, selected, window)
    elif key in ("raise_give_up", "raise_out_trade"):
        dialog = dialog_cls(window.workspace, "GIVE_UP" if key == "raise_give_up" else "OUT_TRADE", window)
    else:
        dialog = dialog_cls(window.workspace, parent=window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    open_pane = getattr(dialog, "open_pane", None)
    if open_pane is not None:
        open_pane.connect(window.open_items)
    window.operations_dialog = dialog  # type: ignore[attr-defined]  # the latest one (tests look at it)
    dialog.open()
    return dialog  # type: ignore[no-any-return]
