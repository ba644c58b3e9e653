"""The Operations dialogs: each runs its service on the TaskRunner and shows what the service did, a refusal shows
the service's sentence, roles that may not act find the action disabled saying who may, and files dropped on the
settlement queue or the break list are imported.

A small demo book (300 trades, SQLite) is built once per session and copied per test; the message, statement and
recon files are the real fixtures of ``tests/fixtures`` and ``tests/fixtures/real``. Expected numbers come from the
database (before/after) or from the service run on the same input, never written into the test.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot
from sqlalchemy import event, func, select

from app.models import (
    FailPenalty,
    Instrument,
    ReconDefinition,
    SettlementInstruction,
    SettlementMessage,
    Statement,
    Trade,
)
from app.models.enums import AssetClass, InstructionStatus, MessageDirection, TradeStatus
from app.models.settlement import ClearingException
from app.services import auth
from app.services.db import Database
from app.services.recon import definitions as defs
from app.services.recon.files import reconcile_files
from app.views import resources
from app.views.main_window import MainWindow
from app.views.operations import pane_hooks
from app.views.operations.accrue_penalties import AccruePenaltiesDialog
from app.views.operations.approval_thresholds import ApprovalThresholdsDialog
from app.views.operations.clearing import GIVE_UP, RaiseExceptionDialog, WorkExceptionDialog
from app.views.operations.common import OperationDialog
from app.views.operations.generate_instructions import GenerateInstructionsDialog
from app.views.operations.message_import import MessageImportDialog
from app.views.operations.recon_definitions import ReconDefinitionsDialog
from app.views.operations.recon_files import ReconcileFilesDialog
from app.views.operations.send_instructions import SendInstructionsDialog
from app.views.operations.sla_rules import SlaRulesDialog
from app.views.operations.statement_import import StatementImportDialog
from app.views.panes.base import Workspace
from app.views.panes.break_investigation import BreakInvestigationPane
from app.views.panes.settlement_queue import SettlementQueuePane
from app.views.tasks import TaskRunner

from .conftest import PASSWORD, demo_template_file, sqlite_copy
from .gui_helpers import show_pane
from .helpers import REAL_FIXTURES

HERE = Path(__file__).resolve().parent
SWIFT = HERE / "fixtures" / "swift"
RECON = HERE / "fixtures" / "recon"
SHARED = REAL_FIXTURES
REAL_MT = SHARED / "swift-mt-securities" / "prowide-core"
MT940 = SHARED / "mt940" / "jejik-mt940"
CAMT = SHARED / "camt" / "genkgo-camt"
WAIT = 20_000
GUI_CHECKOUTS: list[bool] = []
S = InstructionStatus


# --- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    """A 300-trade demo book built once per session and copied per test."""
    return demo_template_file(tmp_path_factory, sqlite_template, trades=300, seed=7)


@pytest.fixture
def demo_db(tmp_path: Path, demo_template: Path) -> Iterator[Database]:
    db = sqlite_copy(demo_template, tmp_path / "demo.sqlite")
    # Every connection the GUI thread takes is counted: while a dialog runs, the test itself reads nothing, so any
    # checkout on the main thread then is the GUI touching the database (see ``run``).
    event.listen(
        db.engine,
        "checkout",
        lambda *_: GUI_CHECKOUTS.append(threading.current_thread() is threading.main_thread()),
    )
    yield db
    db.dispose()


@pytest.fixture
def ws(demo_db: Database, tasks: TaskRunner) -> Callable[[str], Workspace]:
    def factory(username: str) -> Workspace:
        return Workspace(db=demo_db, actor=auth.login(demo_db, username, PASSWORD), tasks=tasks)

    return factory


Opener = Callable[..., Any]


@pytest.fixture
def show(qtbot: QtBot) -> Opener:
    """Show a dialog the way the menu does (non-blocking open), tracked by qtbot."""

    def opener(dialog: QWidget) -> Any:
        qtbot.addWidget(dialog)
        dialog.show()
        return dialog

    return opener


def run(qtbot: QtBot, dialog: OperationDialog) -> Any:
    """Press Run and wait for the result (or fail with the refusal)."""
    refusals: list[str] = []
    dialog.refused.connect(refusals.append)
    GUI_CHECKOUTS.clear()
    with qtbot.waitSignal(dialog.completed, timeout=WAIT, raising=False) as blocker:
        qtbot.mouseClick(dialog.run_button, Qt.MouseButton.LeftButton)
    assert not refusals, refusals
    assert blocker.signal_triggered, dialog.notice_text()
    assert not any(GUI_CHECKOUTS), "a database connection was used on the GUI thread"
    return dialog.result_value


def refused(qtbot: QtBot, dialog: OperationDialog) -> str:
    with qtbot.waitSignal(dialog.refused, timeout=WAIT) as blocker:
        dialog.start()
    return str(blocker.args[0])


def instructed(db: Database) -> SettlementInstruction:
    with db.read() as s:
        return s.scalars(
            select(SettlementInstruction)
            .where(
                SettlementInstruction.status == S.INSTRUCTED, SettlementInstruction.exception_kind.is_(None)
            )
            .order_by(SettlementInstruction.id)
            .limit(1)
        ).one()


def status_of(db: Database, instruction_id: int) -> str:
    with db.read() as s:
        return str(s.get(SettlementInstruction, instruction_id).status)  # type: ignore[union-attr]


def matched_advice(tmp_path: Path, ref: str) -> Path:
    """The real MT548 'matched' advice, addressed to one of the demo book's instructions."""
    path = tmp_path / f"MT548_matched_{ref}.fin"
    path.write_bytes((SWIFT / "MT548_matched.fin").read_bytes().replace(b"OPSTEST0001", ref.encode()))
    return path


def drop(widget: QWidget, paths: list[Path]) -> None:
    """Drag local files onto ``widget`` and drop them, as the window system delivers it."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(
        QPoint(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    dropped = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, dropped)
    assert dropped.isAccepted()


# --- settlement messages ------------------------------------------------------------------------------------------


def test_message_import_applies_quarantines_refuses_and_knows_duplicates(
    qtbot: QtBot,
    ws: Opener,
    show: Opener,
    demo_db: Database,
    tmp_path: Path,
) -> None:
    target = instructed(demo_db)
    advice = matched_advice(tmp_path, target.instruction_ref)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02PK\x00binary\x00")
    stub = REAL_MT / "MT541_SwiftMessageTest_06.fin"  # a header-only stub: no settlement data
    unmatched = SWIFT / "MT548_unmatched_CMIS.fin"  # addressed to an instruction the book does not have
    dialog = show(MessageImportDialog(ws("clerk1"), [str(advice), str(junk), str(stub), str(unmatched)]))
    result = run(qtbot, dialog)

    assert (result.applied, result.duplicates, result.refused_files) == (1, 0, ["junk.bin"])
    assert status_of(demo_db, target.id) == S.MATCHED.value
    summary = dialog.summary.text()
    assert "<b>1</b> applied" in summary and "junk.bin" in summary
    lines = dialog.issue_lines()
    assert any(line.startswith("junk.bin: refused:") for line in lines), lines
    assert any(
        line.startswith(f"{stub.name}: quarantined:") and "no settlement data" in line for line in lines
    )
    assert any(line.startswith(f"{unmatched.name}: unmatched:") and "OPSTEST" in line for line in lines)
    types = {row[0]: row for row in dialog.types_table.texts()}
    assert types["MT548"][1] == "1"  # applied

    # The same advice again changes nothing: a duplicate.
    dialog.files.list.clear()
    dialog.files.add([str(advice)])
    again = run(qtbot, dialog)
    assert (again.applied, again.duplicates) == (0, 1)
    with demo_db.read() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(SettlementMessage)
                .where(SettlementMessage.file_name == advice.name)
            )
            == 1
        )


def test_an_import_dialog_keeps_its_inputs_together_and_its_spare_room_for_the_result(
    qtbot: QtBot, ws: Opener, show: Opener
) -> None:
    """The file list once sat small in the middle of a tall empty row, the other inputs pushed to the bottom."""
    for dialog in (
        show(MessageImportDialog(ws("clerk1"), [])),
        show(StatementImportDialog(ws("clerk1"), [])),
    ):
        qtbot.waitExposed(dialog)
        files = dialog.files
        assert files.list.height() >= 100  # a few files visible at once
        # The list starts where its row starts (not centred in a stretched row) ...
        assert (
            abs(
                files.list.mapTo(dialog, files.list.rect().topLeft()).y()
                - files.mapTo(dialog, files.rect().topLeft()).y()
            )
            <= 2
        )
        # ... and the inputs take their natural height: the room left is below them, where the result will go.
        assert dialog.inputs.height() <= dialog.inputs.sizeHint().height() + 4
        assert (
            dialog.run_button.mapTo(dialog, dialog.run_button.rect().topLeft()).y()
            > dialog.inputs.geometry().bottom() + 100
        )


def test_an_auditor_may_not_import_and_is_told_who_may(qtbot: QtBot, ws: Opener, show: Opener) -> None:
    dialog = show(MessageImportDialog(ws("auditor"), [str(SWIFT / "MT548_matched.fin")]))
    assert not dialog.run_button.isEnabled()
    assert "needs the role admin or clerk or supervisor (you are auditor)" in dialog.run_button.toolTip()
    dialog.start()  # the menu or a drop may still start it: nothing runs, the reason shows
    assert "Import files and messages needs the role" in dialog.notice_text()
    assert not dialog.running


@pytest.fixture
def queue_pane(qtbot: QtBot, ws: Opener) -> Callable[[str], SettlementQueuePane]:
    def factory(username: str) -> SettlementQueuePane:
        pane = SettlementQueuePane(ws(username))
        return show_pane(qtbot, pane, (1300, 760), pane.refreshed, timeout=WAIT)

    return factory


def test_dropping_a_message_file_on_the_queue_imports_it(
    qtbot: QtBot, queue_pane: Callable[[str], SettlementQueuePane], demo_db: Database, tmp_path: Path
) -> None:
    target = instructed(demo_db)
    advice = matched_advice(tmp_path, target.instruction_ref)
    pane = queue_pane("clerk1")
    drop(pane.table.viewport(), [advice])
    dialog = pane.operations_dialog  # type: ignore[attr-defined]
    assert isinstance(dialog, MessageImportDialog) and dialog.files.paths() == [str(advice)]
    qtbot.waitUntil(lambda: dialog.result_value is not None, timeout=WAIT)
    assert dialog.result_value.applied == 1
    assert status_of(demo_db, target.id) == S.MATCHED.value


def test_send_instructions_writes_one_file_per_message_and_records_them(
    qtbot: QtBot, ws: Opener, show: Opener, demo_db: Database, tmp_path: Path
) -> None:
    with demo_db.read() as s:
        todo = s.scalar(
            select(func.count())
            .select_from(SettlementInstruction)
            .where(SettlementInstruction.status == S.INSTRUCTED)
        )
    assert todo
    dialog = show(SendInstructionsDialog(ws("clerk1")))
    dialog.set_format("sese023")
    dialog.folder.setText(str(tmp_path / "out"))
    result = run(qtbot, dialog)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) == todo == result.written
    assert sorted(row[0] for row in dialog.files_table.texts()) == written
    assert all(name.endswith(".xml") for name in written)
    with demo_db.read() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(SettlementMessage)
                .where(SettlementMessage.direction == MessageDirection.OUTBOUND)
            )
            == todo
        )
    # The same messages again, as one batch file: written, but not recorded as sent twice.
    dialog.set_format("sese023", batch=True)
    again = run(qtbot, dialog)
    assert (again.written, again.already_sent, len(again.files)) == (0, todo, 1)
    assert "had been sent before" in dialog.summary.text()


def test_generate_then_nothing_more_to_generate(
    qtbot: QtBot, ws: Opener, show: Opener, demo_db: Database
) -> None:
    def count() -> int:
        with demo_db.read() as s:
            return int(s.scalar(select(func.count()).select_from(SettlementInstruction)) or 0)

    before = count()
    dialog = show(GenerateInstructionsDialog(ws("clerk1")))
    dialog.set_mode(False)
    result = run(qtbot, dialog)
    assert count() - before == result.instructions
    if result.instructions:
        assert f"{result.instructions:,} instruction" in dialog.summary.text()
        assert dialog.show_queue.isVisibleTo(dialog)
    again = run(qtbot, dialog)
    assert again.instructions == 0 and count() - before == result.instructions
    assert "No new settlement instructions" in dialog.summary.text()


def test_accrue_penalties_adds_each_failing_day_once(
    qtbot: QtBot, ws: Opener, show: Opener, demo_db: Database
) -> None:
    def penalties() -> int:
        with demo_db.read() as s:
            return int(s.scalar(select(func.count()).select_from(FailPenalty)) or 0)

    before = penalties()
    dialog = show(AccruePenaltiesDialog(ws("supervisor")))
    result = run(qtbot, dialog)
    assert penalties() - before == result.added
    if result.added:
        assert sorted(r[0] for r in dialog.totals_table.texts()) == sorted(result.totals)
    run(qtbot, dialog)
    assert "No new penalties" in dialog.summary.text() and penalties() - before == result.added


# --- statements ---------------------------------------------------------------------------------------------------


def _statement(number: str, opening: str, closing: str, ref: str) -> str:
    return f":20:{ref}\n:25:NL91ABNA0417164300\n:28C:{number}\n:60F:{opening}\n:62F:{closing}\n-\n"


def test_statement_import_lists_each_file_with_findings_and_refusals(
    qtbot: QtBot, ws: Opener, show: Opener, demo_db: Database, tmp_path: Path
) -> None:
    day1 = tmp_path / "day1.sta"
    day1.write_text(_statement("1/1", "C240101EUR100,00", "C240102EUR100,00", "S1"))
    day4 = tmp_path / "day4.sta"
    day4.write_text(_statement("4/1", "C240104EUR200,00", "C240105EUR200,00", "S4"))
    wrong = CAMT / "camt053.v2.wrong.xml"
    files = [MT940 / "generic.txt", wrong, day1, day4]
    dialog = show(StatementImportDialog(ws("clerk1"), [str(p) for p in files]))
    with demo_db.read() as s:
        before = s.scalar(select(func.count()).select_from(Statement))
    result = run(qtbot, dialog)
    outcomes = dialog.file_outcomes()
    assert outcomes == {
        "generic.txt": "imported",
        wrong.name: "refused",
        "day1.sta": "imported",
        "day4.sta": "imported",
    }
    refused_row = next(r for r in dialog.files_table.texts() if r[0] == wrong.name)
    assert "does not follow the camt.053.001.02 schema" in refused_row[-1]
    codes = [r[3] for r in dialog.findings_table.texts()]
    assert "SEQUENCE_GAP" in codes and "REFUSED" in codes
    with demo_db.read() as s:
        stored = s.scalar(select(func.count()).select_from(Statement))
    assert (
        stored - before == result.counts()["statements_imported"]
    )  # nothing of the refused file was written
    # Imported twice: already there, nothing changes.
    again = run(qtbot, dialog)
    assert again.counts()["statements_imported"] == 0
    assert dialog.file_outcomes()["generic.txt"] == "duplicate"


def test_dropping_a_statement_on_the_break_list_imports_it(
    qtbot: QtBot, ws: Opener, demo_db: Database
) -> None:
    pane = BreakInvestigationPane(ws("clerk1"))
    show_pane(qtbot, pane, (1200, 700), pane.refreshed, timeout=WAIT)
    with demo_db.read() as s:
        before = s.scalar(select(func.count()).select_from(Statement))
    drop(pane.table.viewport(), [MT940 / "generic.txt"])
    dialog = pane.operations_dialog  # type: ignore[attr-defined]
    assert isinstance(dialog, StatementImportDialog)
    qtbot.waitUntil(lambda: dialog.result_value is not None, timeout=WAIT)
    with demo_db.read() as s:
        after = s.scalar(select(func.count()).select_from(Statement))
    assert after - before == dialog.result_value.counts()["statements_imported"] > 0


# --- reconciliation -----------------------------------------------------------------------------------------------


def test_run_recon_from_the_menu_shows_counts_and_brings_the_breaks_forward(
    qtbot: QtBot, demo_db: Database, tasks: TaskRunner
) -> None:
    actor = auth.login(demo_db, "clerk1", PASSWORD)
    window = MainWindow(demo_db, actor, tasks, monitor_interval_ms=60_000, feed_interval_ms=60_000)
    with qtbot.waitSignal(window.layout_restored, timeout=WAIT):
        window.open()
    try:
        action = window.operations_actions["run_recon"]
        assert action.isEnabled()
        action.trigger()
        dialog = window.operations_dialog  # type: ignore[attr-defined]
        qtbot.waitUntil(lambda: dialog.definition.findData(defs.TRADE_CONFIRMATIONS) >= 0, timeout=WAIT)
        dialog.choose(defs.TRADE_CONFIRMATIONS)
        result = run(qtbot, dialog)
        rows = dict((r[0], r[1]) for r in dialog.counts_table.texts())
        assert f"<b>{result.matched:,}</b> matched" in dialog.summary.text()
        for kind, n in result.breaks.items():
            assert any(k.startswith("breaks:") and v == f"{n}" for k, v in rows.items()), (kind, rows)
        pane = window.panes["break_investigation"]
        with demo_db.read() as s:
            def_id = s.scalar(
                select(ReconDefinition.id).where(ReconDefinition.name == defs.TRADE_CONFIRMATIONS)
            )
        assert pane._drill is not None and pane._drill.definition_ids == (def_id,)
        assert pane.chip.isVisibleTo(pane)
    finally:
        window._finish_close()
        window.deleteLater()


def test_operations_menu_disables_what_the_role_may_not_do(
    qtbot: QtBot, demo_db: Database, tasks: TaskRunner
) -> None:
    actor = auth.login(demo_db, "auditor", PASSWORD)
    window = MainWindow(demo_db, actor, tasks, monitor_interval_ms=60_000, feed_interval_ms=60_000)
    try:
        acts = window.operations_actions
        for key in (
            "import_messages",
            "send_instructions",
            "generate_instructions",
            "accrue_penalties",
            "import_statements",
            "run_recon",
            "raise_give_up",
            "raise_out_trade",
        ):
            assert not acts[key].isEnabled(), key
            assert "needs the role" in acts[key].toolTip() and "(you are auditor)" in acts[key].toolTip(), key
        assert acts["reconcile_files"].isEnabled() and acts["recon_definitions"].isEnabled()
    finally:
        window._finish_close()
        window.deleteLater()


def test_each_operations_entry_opens_its_dialog(qtbot: QtBot, demo_db: Database, tasks: TaskRunner) -> None:
    actor = auth.login(demo_db, "supervisor", PASSWORD)
    window = MainWindow(demo_db, actor, tasks, monitor_interval_ms=60_000, feed_interval_ms=60_000)
    expected = {
        "import_messages": MessageImportDialog,
        "send_instructions": SendInstructionsDialog,
        "generate_instructions": GenerateInstructionsDialog,
        "accrue_penalties": AccruePenaltiesDialog,
        "import_statements": StatementImportDialog,
        "reconcile_files": ReconcileFilesDialog,
        "recon_definitions": ReconDefinitionsDialog,
        "raise_give_up": RaiseExceptionDialog,
        "approval_thresholds": ApprovalThresholdsDialog,
        "sla_rules": SlaRulesDialog,
    }
    try:
        for key, cls in expected.items():
            action = window.operations_actions[key]
            assert action.isEnabled(), key
            action.trigger()
            dialog = window.operations_dialog  # type: ignore[attr-defined]
            assert type(dialog) is cls and dialog.isVisible(), key
            if isinstance(dialog, ReconDefinitionsDialog):
                qtbot.waitUntil(lambda d=dialog: bool(d.definitions), timeout=WAIT)  # type: ignore[misc]
            dialog.close()
    finally:
        window._finish_close()
        window.deleteLater()


def test_reconcile_two_files_shows_the_services_counts_and_writes_the_report(
    qtbot: QtBot, ws: Opener, show: Opener, tmp_path: Path
) -> None:
    left, right = RECON / "ours.csv", RECON / "theirs.csv"
    dialog = show(ReconcileFilesDialog(ws("auditor")))  # no database: anyone may compare two files
    with qtbot.waitSignal(dialog.columns_shown, timeout=WAIT) as blocker:
        dialog.set_files(str(left), str(right))
    assert "trade_id" in blocker.args[0] and "amount" in blocker.args[0]
    dialog.set_key("trade_id")
    dialog.set_compare("quantity")
    dialog.set_compare("amount", "abs", "0.01")
    dialog.set_compare("settle_date", "days", "1")
    out = tmp_path / "breaks.xlsx"
    dialog.out.setText(str(out))
    run(qtbot, dialog)
    expected = reconcile_files(
        left, right, ["trade_id"], ["quantity", "amount:abs=0.01", "settle_date:days=1"]
    )
    assert dialog.counts == {k: expected.summary[k] for k in dialog.counts}
    assert out.is_file()
    assert dialog.report_table.rowCount() == len(expected.report)

    # A file the engine cannot read is refused with the file named.
    bad = tmp_path / "right.pdf"
    bad.write_bytes(b"%PDF-1.4")
    dialog.right.setText(str(bad))
    dialog.read_columns()
    qtbot.waitUntil(lambda: "RIGHT file right.pdf" in dialog.notice_text(), timeout=WAIT)


# --- recon definitions --------------------------------------------------------------------------------------------


def _editor(qtbot: QtBot, show: Opener, workspace: Workspace) -> ReconDefinitionsDialog:
    dialog = ReconDefinitionsDialog(workspace)
    with qtbot.waitSignal(dialog.definitions_shown, timeout=WAIT):
        show(dialog)
    dialog.choose(defs.TRADE_CONFIRMATIONS)
    return dialog


def _stored(db: Database) -> ReconDefinition:
    with db.read() as s:
        return s.scalars(
            select(ReconDefinition).where(ReconDefinition.name == defs.TRADE_CONFIRMATIONS)
        ).one()


def test_a_supervisor_edits_tolerances_and_pass_order_and_a_stale_edit_is_refused(
    qtbot: QtBot, ws: Opener, show: Opener, demo_db: Database
) -> None:
    sup = ws("supervisor")
    first = _editor(qtbot, show, sup)
    stale = _editor(qtbot, show, ws("supervisor2"))  # opened at the same version
    version = _stored(demo_db).version
    first.structure.set_tolerance("amount", "abs", "0.05")
    names = first.structure.pass_names()
    first.structure.passes.selectRow(1)
    first.structure.move_pass(-1)
    assert first.validate() is None and first.save_button.isEnabled()
    with qtbot.waitSignal(first.saved, timeout=WAIT):
        qtbot.mouseClick(first.save_button, Qt.MouseButton.LeftButton)
    stored = _stored(demo_db)
    assert stored.version == version + 1
    assert stored.config["fields"]["amount"]["tolerance"] == "abs=0.05"
    assert [p["name"] for p in stored.config["passes"]] == [names[1], names[0], *names[2:]]

    stale.structure.set_tolerance("amount", "abs", "0.02")
    qtbot.waitUntil(stale.save_button.isEnabled, timeout=WAIT)  # checked as the user types
    with qtbot.waitSignal(stale.refused, timeout=WAIT) as blocker:
        qtbot.mouseClick(stale.save_button, Qt.MouseButton.LeftButton)
    assert "supervisor" in blocker.args[0] and f"you had version {version}" in blocker.args[0]
    assert "Not saved" in stale.problem_text()
    assert _stored(demo_db).config["fields"]["amount"]["tolerance"] == "abs=0.05"


def test_an_invalid_edit_is_shown_inline_and_cannot_be_saved(
    qtbot: QtBot, ws: Opener, show: Opener, demo_db: Database
) -> None:
    dialog = _editor(qtbot, show, ws("supervisor"))
    version = _stored(demo_db).version
    dialog.structure.set_tolerance("amount", "days", "2")  # days apply to dates, amount is money
    problem = dialog.validate()
    assert problem and "fields.amount.tolerance" in problem and problem in dialog.problem_text()
    assert not dialog.save_button.isEnabled()
    dialog.tabs.setCurrentWidget(dialog.json)
    dialog.json.setPlainText('{"left": ')
    assert "not valid JSON" in (dialog.validate() or "")
    assert not dialog.save_button.isEnabled()
    assert _stored(demo_db).version == version


def test_a_clerk_can_read_the_definitions_but_not_save(qtbot: QtBot, ws: Opener, show: Opener) -> None:
    dialog = _editor(qtbot, show, ws("clerk1"))
    assert dialog.structure.fields.rowCount() > 0
    assert not dialog.save_button.isEnabled()
    assert dialog.save_button.toolTip() == (
        "Edit recon and SLA rules needs the role admin or supervisor (you are clerk)."
    )
    assert dialog.json.isReadOnly() and not dialog.structure.isEnabled()
    dialog.save()  # even called directly, nothing is sent
    assert "needs the role admin or supervisor" in dialog.problem_text()


# --- approval thresholds --------------------------------------------------------------------------------------


def test_a_supervisor_sets_a_threshold_and_a_clerk_only_reads_them(
    qtbot: QtBot, ws: Opener, show: Opener, demo_db: Database
) -> None:
    from app.services.workflow.corrections import thresholds

    sup = ws("supervisor")
    dialog = show(ApprovalThresholdsDialog(sup))
    qtbot.waitUntil(lambda: dialog.table.rowCount() == len(thresholds(demo_db, sup.actor)), timeout=WAIT)
    dialog.currency.setText("eur")
    dialog.amount.setText("250000")
    saved = run(qtbot, dialog)
    assert saved["EUR"] == Decimal("250000") == thresholds(demo_db, sup.actor)["EUR"]
    assert ["EUR", "250,000"] in dialog.table.texts()
    dialog.currency.setText("E1")
    assert "3-letter currency" in refused(qtbot, dialog)
    assert thresholds(demo_db, sup.actor)["EUR"] == Decimal("250000")  # the refusal changed nothing
    dialog.close()

    clerk = show(ApprovalThresholdsDialog(ws("clerk1")))
    qtbot.waitUntil(lambda: ["EUR", "250,000"] in clerk.table.texts(), timeout=WAIT)
    assert not clerk.run_button.isEnabled() and not clerk.inputs.isEnabled()
    assert "needs the role" in clerk.notice_text()


# --- SLA rules ----------------------------------------------------------------------------------------------------


def test_a_supervisor_edits_an_sla_rule_and_bad_or_stale_edits_are_refused(
    qtbot: QtBot, ws: Opener, show: Opener, demo_db: Database
) -> None:
    from app.services.sla import rules

    sup = ws("supervisor")
    rules.ensure_default_slas(demo_db, sup.actor)
    dialog = show(SlaRulesDialog(sup))
    qtbot.waitUntil(lambda: dialog.sla.count() == len(rules.list_slas(demo_db, sup.actor)), timeout=WAIT)
    dialog.sla.setCurrentIndex(dialog.sla.findData("REPAIR_FIX"))
    before = dialog.current()
    assert before is not None and "REPAIR_FIX" in dialog.sla.currentText()
    assert json.loads(dialog.rule.toPlainText()) == before.rule.as_dict()
    assert "within" in dialog.reading.text()

    # A changed warning window and rule are saved as the next version, and the next evaluation reads them.
    rule = before.rule.as_dict() | {"hours": before.rule.hours + 2}
    dialog.rule.setPlainText(json.dumps(rule))
    dialog.warning.setValue(before.warning_minutes + 15)
    run(qtbot, dialog)
    stored = next(i for i in rules.list_slas(demo_db, sup.actor) if i.code == "REPAIR_FIX")
    assert stored.version == before.version + 1
    assert (
        stored.rule.hours == before.rule.hours + 2 and stored.warning_minutes == before.warning_minutes + 15
    )
    assert dialog.current() is not None and dialog.current().version == stored.version  # the form shows it

    # Not JSON: refused in the dialog, nothing sent.
    dialog.rule.setPlainText("{ not json")
    dialog.start()
    assert "not valid JSON" in dialog.notice_text() and not dialog.running
    # JSON the service does not accept: its reason, naming the field.
    dialog.rule.setPlainText(json.dumps(stored.rule.as_dict() | {"hours": -1}))
    assert "hours" in refused(qtbot, dialog)
    # Someone else saved meanwhile: the stale copy is refused and nothing changes.
    rules.update_sla(
        demo_db, ws("supervisor2").actor, stored.id, warning_minutes=5, seen_version=stored.version
    )
    dialog.rule.setPlainText(json.dumps(stored.rule.as_dict()))
    dialog.warning.setValue(90)
    assert "supervisor2" in refused(qtbot, dialog)
    latest = next(i for i in rules.list_slas(demo_db, sup.actor) if i.code == "REPAIR_FIX")
    assert latest.warning_minutes == 5 and latest.version == stored.version + 1
    dialog.close()

    clerk = show(SlaRulesDialog(ws("clerk1")))
    qtbot.waitUntil(lambda: clerk.sla.count() > 0, timeout=WAIT)
    assert not clerk.run_button.isEnabled() and "needs the role" in clerk.notice_text()


# --- give-ups and out-trades --------------------------------------------------------------------------------------


def _futures_trade(db: Database) -> Trade:
    with db.read() as s:
        return s.scalars(
            select(Trade)
            .join(Instrument, Instrument.id == Trade.instrument_id)
            .where(
                Instrument.asset_class == AssetClass.FUTURE,
                Trade.status.in_([TradeStatus.VALIDATED, TradeStatus.CONFIRMED, TradeStatus.SETTLED]),
                Trade.counterparty_id.is_not(None),
                Trade.account_id.is_not(None),
            )
            .order_by(Trade.id)
            .limit(1)
        ).one()


def test_raise_a_give_up_then_acknowledge_it_from_the_queue_context_menu(
    qtbot: QtBot,
    ws: Opener,
    show: Opener,
    queue_pane: Callable[[str], SettlementQueuePane],
    demo_db: Database,
) -> None:
    trade = _futures_trade(demo_db)
    raise_dialog = show(RaiseExceptionDialog(ws("clerk1"), GIVE_UP))
    qtbot.waitUntil(lambda: raise_dialog.broker.count() > 2, timeout=WAIT)
    other = next(
        raise_dialog.broker.itemText(i).split(" ")[0]
        for i in range(1, raise_dialog.broker.count())
        if not raise_dialog.broker.itemText(i).startswith(f"{trade.counterparty_code} ")
    )
    raise_dialog.trade_ref.setText(trade.trade_ref)
    raise_dialog.choose_broker(other)
    asked: list[tuple[str, dict]] = []
    raise_dialog.open_pane.connect(lambda p, c: asked.append((p, c)))
    exc = run(qtbot, raise_dialog)
    assert exc["state"] == "RAISED" and exc["to"] == other
    assert asked and asked[0][0] == "settlement_queue" and asked[0][1]["ids"] == [exc["instruction_id"]]
    # Raising it twice is refused with the service's reason.
    assert "already has a give-up in progress" in refused(qtbot, raise_dialog)

    pane = queue_pane("clerk1")
    with qtbot.waitSignal(pane.model.query_loaded, timeout=WAIT):
        pane.drill_down(asked[0][1])
    qtbot.waitUntil(lambda: pane.model.rowCount() == 1 and pane.model.is_row_loaded(0), timeout=WAIT)
    pane.select_row(0)
    menu = pane_hooks.queue_menu(pane)
    work = next(a for a in menu.actions() if a.objectName() == "workClearingException")
    assert work.isEnabled() and "give-up GIVE" in work.text()
    work.trigger()
    dialog = pane.operations_dialog  # type: ignore[attr-defined]
    assert isinstance(dialog, WorkExceptionDialog)
    qtbot.waitUntil(lambda: dialog.exception is not None, timeout=WAIT)
    assert dialog.buttons["acknowledge_give_up"].isEnabled()
    assert not dialog.buttons["resend_give_up"].isEnabled()
    assert "this needs it REJECTED" in dialog.buttons["resend_give_up"].toolTip()
    assert not dialog.buttons["recognised"].isVisibleTo(dialog)  # out-trade actions are not offered

    dialog.do("acknowledge_give_up")  # without the take-up reference: asked for, nothing sent
    assert "take-up reference" in dialog.notice_text() and not dialog.running
    dialog.reference.setText("TU-42")
    with qtbot.waitSignal(dialog.completed, timeout=WAIT):
        dialog.do("acknowledge_give_up")
    assert "now clears with" in dialog.summary.text()
    with demo_db.read() as s:
        row = s.get(ClearingException, exc["id"])
        moved = s.get(Trade, trade.id)
        assert row is not None and moved is not None
        assert (str(row.state), row.ack_ref, moved.counterparty_code) == ("ACKNOWLEDGED", "TU-42", other)
    assert not dialog.buttons["acknowledge_give_up"].isEnabled()
    assert not dialog.buttons["cancel_exception"].isEnabled()


def test_an_auditor_sees_the_clearing_actions_disabled(
    qtbot: QtBot, queue_pane: Callable[[str], SettlementQueuePane]
) -> None:
    pane = queue_pane("auditor")
    menu = pane_hooks.queue_menu(pane)
    raises = [a for a in menu.actions() if a.text().startswith("Raise")]
    assert len(raises) == 2 and not any(a.isEnabled() for a in raises)
    assert all("(you are auditor)" in a.toolTip() for a in raises)


# --- screenshots --------------------------------------------------------------------------------------------------


def test_screenshots_of_dialogs_with_results(
    qtbot: QtBot, ws: Opener, show: Opener, demo_db: Database, tmp_path: Path
) -> None:
    """operations_*.png: message import, statement import and two-file reconciliation results, and the definitions
    editor with an invalid edit. Written to docs/screenshots/ only when OPSDESK_SCREENSHOTS=1 (a test run must not
    change the checkout), else beside the test's temporary files."""
    shots = HERE.parent / "docs" / "screenshots" if os.environ.get("OPSDESK_SCREENSHOTS") == "1" else tmp_path
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.setStyleSheet(resources.stylesheet())  # as run_gui styles the application
    target = instructed(demo_db)
    messages = show(
        MessageImportDialog(
            ws("clerk1"),
            [
                str(matched_advice(tmp_path, target.instruction_ref)),
                str(SWIFT / "MT548_unmatched_DQUA.fin"),
                str(REAL_MT / "MT541_SwiftMessageTest_06.fin"),
                str(REAL_MT / "MT535_MT535ParserTest_01.fin"),
            ],
        )
    )
    messages.resize(980, 700)
    run(qtbot, messages)
    statements = show(
        StatementImportDialog(
            ws("clerk1"),
            [
                str(MT940 / "generic.txt"),
                str(CAMT / "camt053.v2.wrong.xml"),
                str(CAMT / "camt053.v2.minimal.xml"),
            ],
        )
    )
    statements.resize(980, 640)
    run(qtbot, statements)
    files = show(ReconcileFilesDialog(ws("clerk1")))
    files.resize(980, 860)
    with qtbot.waitSignal(files.columns_shown, timeout=WAIT):
        files.set_files(str(RECON / "ours.csv"), str(RECON / "theirs.csv"))
    files.set_key("trade_id")
    files.set_compare("amount", "abs", "0.01")
    files.set_compare("settle_date", "days", "1")
    files.set_compare("quantity")
    run(qtbot, files)
    editor = _editor(qtbot, show, ws("supervisor"))
    editor.resize(1180, 720)
    editor.structure.set_tolerance("amount", "days", "2")
    assert editor.validate()  # the inline problem shows under the editor
    limits = show(ApprovalThresholdsDialog(ws("supervisor")))
    limits.resize(640, 460)
    limits.currency.setText("*")
    limits.amount.setText("1000000")
    run(qtbot, limits)
    from app.services.sla.rules import ensure_default_slas

    ensure_default_slas(demo_db, ws("supervisor").actor)
    sla_rules = show(SlaRulesDialog(ws("supervisor")))
    sla_rules.resize(760, 720)
    qtbot.waitUntil(lambda: sla_rules.sla.count() > 0, timeout=WAIT)
    sla_rules.sla.setCurrentIndex(sla_rules.sla.findData("BREAK_RESOLVE"))
    qtbot.wait(200)  # let the layouts take the result tables in before grabbing
    shown = (
        ("sla_rules", sla_rules),
        ("approval_thresholds", limits),
        ("messages", messages),
        ("statements", statements),
        ("recon_files", files),
        ("definitions", editor),
    )
    for name, dialog in shown:
        image = dialog.grab()
        assert not image.isNull() and image.width() > 600
        assert image.save(str(shots / f"operations_{name}.png"))
    app.setStyleSheet("")
