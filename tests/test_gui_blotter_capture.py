"""The blotter's capture actions: import by menu or drag-and-drop with the summary dialog, repair from the repair
queue (stale edits and validated trades refused with the service's words), the detail panel, and export.

These drive the real capture service (app.services.capture) through the pane, as a clerk does.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select, text

from app.models import Trade
from app.services import auth
from app.services.blotter import COLUMN_KEYS, COLUMNS, BlotterFilter, Sort
from app.services.db import Database
from app.services.permissions import Actor
from app.views.blotter import capture_api
from app.views.blotter.detail_panel import CHANGED_BACKGROUND, VERSION_META, label_of
from app.views.blotter.import_dialog import ImportDialog
from app.views.blotter.repair_dialog import RepairDialog
from app.views.main_window import MainWindow
from app.views.panes.base import Workspace
from app.views.panes.trade_blotter import TradeBlotterPane
from app.views.tasks import TaskRunner

from .conftest import PASSWORD, demo_template_file, sqlite_copy
from .gui_helpers import show_pane

sqlite_only = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

HEADER = [
    "trade_ref",
    "isin",
    "account",
    "counterparty",
    "side",
    "quantity",
    "price",
    "currency",
    "trade_date",
]
LINES = [
    ["NEW-1", "US0378331005", "ACC1", "CP1", "BUY", "100", "189.25", "USD", "2026-11-19"],
    ["NEW-2", "US0378331005", "ACC1", "CP1", "SELL", "200", "189.50", "USD", "2026-11-19"],
    ["NEW-3", "US0378331005", "ACC1", "CP1", "BUY", "abc", "189.25", "USD", "2026-11-19"],  # refused
]


def write_csv(path: Path, lines: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        w.writerows(lines)
    return path


@pytest.fixture
def open_pane(qtbot: QtBot, db: Database, tasks: TaskRunner) -> Callable[[Actor], TradeBlotterPane]:
    def factory(actor: Actor) -> TradeBlotterPane:
        pane = TradeBlotterPane(Workspace(db=db, actor=actor, tasks=tasks))
        return show_pane(qtbot, pane, (1200, 700), pane.refreshed)

    return factory


def trades_in(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Trade)) or 0)


def drop_files(pane: TradeBlotterPane, paths: list[Path]) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    mods, viewport = Qt.KeyboardModifier.NoModifier, pane.table.viewport()
    QApplication.sendEvent(
        viewport,
        QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, mods),
    )
    QApplication.sendEvent(
        viewport, QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, mods)
    )


# --- import -------------------------------------------------------------------------------------------------------


def test_files_dragged_over_the_blotter_prepare_the_import_before_the_drop(
    qtbot: QtBot, users: dict[str, Actor], open_pane: Callable[..., TradeBlotterPane], tmp_path: Path
) -> None:
    """The import's code is loaded in the background while the clerk aims the files, not after the drop."""
    pane = open_pane(users["clerk1"])
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(write_csv(tmp_path / "desk.csv", LINES)))])
    prepared: list[str] = []
    pane.table.files_coming.connect(lambda: prepared.append("import"))
    QApplication.sendEvent(
        pane.table.viewport(),
        QDragEnterEvent(
            QPoint(20, 20),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        ),
    )
    assert prepared == ["import"]
    assert pane.import_dialog is None  # nothing imported until the drop


def test_dropping_a_file_imports_it_and_the_summary_names_every_line(
    qtbot: QtBot,
    db: Database,
    users: dict[str, Actor],
    open_pane: Callable[..., TradeBlotterPane],
    tmp_path: Path,
) -> None:
    pane = open_pane(users["clerk1"])
    assert pane.model.rowCount() == 0
    path = write_csv(tmp_path / "desk.csv", LINES)
    with qtbot.waitSignal(pane.import_opened, timeout=10_000) as opened:
        drop_files(pane, [path])
    dialog: ImportDialog = opened.args[0]
    with qtbot.waitSignal(dialog.finished_all, timeout=30_000):
        pass
    # No reference data in this database: both readable lines are kept, in repair; the third is refused.
    assert dialog.totals() == {"accepted": 0, "repair": 2, "rejected": 1, "duplicates": 0, "skipped": 0}
    assert "2</b> sent to repair" in dialog.summary_text()
    lines = dialog.issue_lines()
    assert any(line.startswith("desk.csv:4:quantity:") for line in lines), lines
    assert all(line.split(":")[0] == "desk.csv" for line in lines)
    qtbot.waitUntil(lambda: pane.model.rowCount() == 2 and not pane.model.loading, timeout=10_000)
    dialog.close()

    # The same file again changes nothing and says so.
    pane.import_files([str(path)])
    again = pane.import_dialog
    assert isinstance(again, ImportDialog)
    with qtbot.waitSignal(again.finished_all, timeout=30_000):
        pass
    assert again.totals()["duplicates"] == 3 and "already been imported" in again.summary_text()
    assert trades_in(db) == 2


@sqlite_only
def test_an_import_cancelled_at_once_changes_nothing(
    qtbot: QtBot,
    db: Database,
    users: dict[str, Actor],
    open_pane: Callable[..., TradeBlotterPane],
    tmp_path: Path,
) -> None:
    pane = open_pane(users["clerk1"])
    lines = [
        [f"N-{i}", "US0378331005", "ACC1", "CP1", "BUY", "100", "189.25", "USD", "2026-11-19"]
        for i in range(50)
    ]
    path = write_csv(tmp_path / "big.csv", lines)
    pane.import_files([str(path)])
    dialog = pane.import_dialog
    assert isinstance(dialog, ImportDialog) and dialog.running
    with qtbot.waitSignal(dialog.cancelled, timeout=30_000):
        dialog.cancel()
    assert "cancelled" in dialog.step.text() and trades_in(db) == 0


@sqlite_only
def test_a_malformed_file_is_refused_with_the_services_sentence(
    qtbot: QtBot,
    db: Database,
    users: dict[str, Actor],
    open_pane: Callable[..., TradeBlotterPane],
    tmp_path: Path,
) -> None:
    pane = open_pane(users["clerk1"])
    bad = tmp_path / "empty.csv"
    bad.write_bytes(b"")
    good = write_csv(tmp_path / "good.csv", LINES[:1])
    pane.import_files([str(bad), str(good)])
    dialog = pane.import_dialog
    assert isinstance(dialog, ImportDialog)
    with qtbot.waitSignal(dialog.finished_all, timeout=30_000):
        pass
    assert "<b>empty.csv</b> was not imported:" in dialog.summary_text()
    assert dialog.totals()["repair"] == 1  # the other file still went in
    assert trades_in(db) == 1


def test_an_auditor_cannot_import(
    qtbot: QtBot,
    db: Database,
    users: dict[str, Actor],
    open_pane: Callable[..., TradeBlotterPane],
    tmp_path: Path,
) -> None:
    pane = open_pane(users["auditor"])
    messages: list[str] = []
    pane.message.connect(messages.append)
    drop_files(pane, [write_csv(tmp_path / "x.csv", LINES)])
    assert pane.import_dialog is None and messages == ["auditor may not import trades."]
    assert trades_in(db) == 0


# --- a small demo book: reference data, versions, repairs, instructions --------------------------------------------


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    """A 300-trade demo book built once per session (4 s) and copied per test."""
    return demo_template_file(tmp_path_factory, sqlite_template, trades=300, seed=3)


@pytest.fixture
def demo_db(tmp_path: Path, demo_template: Path) -> Iterator[Database]:
    db = sqlite_copy(demo_template, tmp_path / "demo.sqlite")
    yield db
    db.dispose()


@pytest.fixture
def demo_pane(
    qtbot: QtBot, demo_db: Database, tasks: TaskRunner
) -> Callable[[str], tuple[TradeBlotterPane, Actor]]:
    def factory(username: str) -> tuple[TradeBlotterPane, Actor]:
        actor = auth.login(demo_db, username, PASSWORD)
        pane = TradeBlotterPane(Workspace(db=demo_db, actor=actor, tasks=tasks))
        show_pane(qtbot, pane, (1300, 800), pane.refreshed)
        qtbot.waitUntil(lambda: pane.model.count_exact, timeout=10_000)
        return pane, actor

    return factory


def show_trade(qtbot: QtBot, pane: TradeBlotterPane, trade_ref: str) -> None:
    """Narrow the blotter down to one trade and select it, as a clerk typing its reference would."""
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.set_filter(dataclasses.replace(pane.filter_bar.current(), text=trade_ref))
    qtbot.waitUntil(lambda: pane.model.count_exact and pane.model.rowCount() == 1, timeout=10_000)
    pane.select_row(0)


def one(db: Database, sql: str) -> Any:
    with db.read() as s:
        return s.execute(text(sql)).first()


def test_the_detail_panel_shows_every_version_and_highlights_what_the_front_office_amended(
    qtbot: QtBot, demo_db: Database, demo_pane: Callable[..., Any]
) -> None:
    pane, actor = demo_pane("clerk1")
    trade_id, ref = one(
        demo_db,
        "SELECT t.id, t.trade_ref FROM trades t JOIN trade_versions v ON v.trade_id = t.id "
        "WHERE t.status = 'INSTRUCTED' GROUP BY t.id, t.trade_ref HAVING count(*) >= 2 ORDER BY t.id LIMIT 1",
    )
    detail = capture_api.get("trade_detail")(demo_db, actor, trade_id)  # type: ignore[misc]
    payloads = [v["payload"] for v in detail.versions]
    amended = {k for k in payloads[1] if k not in VERSION_META and payloads[1][k] != payloads[0].get(k)}
    assert amended  # the demo's amendments change the quantity or the price
    show_trade(qtbot, pane, ref)
    with qtbot.waitSignal(pane.detail.loaded, timeout=10_000):
        qtbot.keyClick(pane.table, Qt.Key.Key_Return)
    panel = pane.detail
    assert ref in panel.title.text() and "Instructed" in panel.state.text()
    table = panel.versions
    assert table.columnCount() == 1 + len(detail.versions)
    assert table.horizontalHeaderItem(2).text().startswith("v2 AMEND")
    highlighted = {
        table.item(r, 0).text()
        for r in range(table.rowCount())
        if table.item(r, 2) is not None and table.item(r, 2).background().color() == CHANGED_BACKGROUND
    }
    assert highlighted == {label_of(k) for k in amended}
    assert panel.instructions.rowCount() >= 1 and "Settlement (" in panel.tabs.tabText(3)
    assert "Lifecycle:" in panel.lifecycle.text()
    fields = [panel.fields_grid.itemAt(i).widget().text() for i in range(panel.fields_grid.count())]
    assert "Instrument" in fields and "Counterparty" in fields
    # The reference data reads in words; its ids (meaningless to a clerk) are not listed beside them.
    assert not {"Instrument id", "Account id", "Counterparty id"} & set(fields)


def open_repair_dialog(qtbot: QtBot, pane: TradeBlotterPane) -> RepairDialog:
    with qtbot.waitSignal(pane.repair_opened, timeout=10_000) as opened:
        pane.repair_button.click()
    dialog = opened.args[0]
    assert isinstance(dialog, RepairDialog)
    return dialog


def test_a_clerk_repairs_a_trade_in_the_repair_queue(
    qtbot: QtBot, demo_db: Database, demo_pane: Callable[..., Any]
) -> None:
    pane, actor = demo_pane("clerk1")
    trade_id, ref, instrument_id = one(
        demo_db,
        "SELECT id, trade_ref, instrument_id FROM trades WHERE status = 'REPAIR' "
        "AND exception_codes = 'PRICE_TOLERANCE' ORDER BY id LIMIT 1",
    )
    (reference_price,) = one(demo_db, f"SELECT reference_price FROM instruments WHERE id = {instrument_id}")
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.filter_bar.my_repairs.click()
    show_trade(qtbot, pane, ref)  # "My repairs" and the trade's reference
    assert pane.repair_button.isEnabled()
    dialog = open_repair_dialog(qtbot, pane)
    price = dialog.edits["price"]
    assert price.property("failing") is True and "PRICE_TOLERANCE" in dialog.reasons.text()
    assert list(dialog.edits)[0] == "price"  # the failing field first
    price.setText(str(reference_price))
    with qtbot.waitSignal(dialog.accepted, timeout=10_000):
        dialog.save_button.click()
    assert one(demo_db, f"SELECT status FROM trades WHERE id = {trade_id}")[0] == "VALIDATED"
    # The pane refreshed: the trade left "My repairs" (it is no longer in repair).
    qtbot.waitUntil(lambda: not pane.model.loading and pane.model.rowCount() == 0, timeout=10_000)
    # Its detail names who changed it last, by name.
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.filter_bar.my_repairs.click()  # off: the reference typed before is still the filter
    qtbot.waitUntil(lambda: pane.model.count_exact and pane.model.rowCount() == 1, timeout=10_000)
    pane.select_row(0)
    with qtbot.waitSignal(pane.detail.loaded, timeout=10_000):
        qtbot.keyClick(pane.table, Qt.Key.Key_Return)
    grid = pane.detail.fields_grid
    fields = [grid.itemAt(i).widget().text() for i in range(grid.count())]
    assert fields[fields.index("Updated by") + 1] == "clerk1"


def test_a_stale_repair_says_who_changed_the_trade_and_reloads(
    qtbot: QtBot, demo_db: Database, demo_pane: Callable[..., Any]
) -> None:
    pane, _actor = demo_pane("clerk1")
    trade_id, ref, version = one(
        demo_db, "SELECT id, trade_ref, version FROM trades WHERE status = 'REPAIR' ORDER BY id LIMIT 1"
    )
    show_trade(qtbot, pane, ref)
    dialog = open_repair_dialog(qtbot, pane)
    assert dialog.seen_version == version
    # Another clerk re-validates the same trade meanwhile (another workstation).
    other = auth.login(demo_db, "clerk2", PASSWORD)
    capture_api.get("repair_trade")(demo_db, other, trade_id, version, {})  # type: ignore[misc]
    dialog.edits["counterparty_code"].setText("NOBODY")
    with qtbot.waitSignal(dialog.refused, timeout=10_000) as refused:
        dialog.save_button.click()
    message = refused.args[0]
    assert "changed by clerk2" in message and "reload" in message
    assert dialog.error.text() == message and dialog.reload_button.isVisibleTo(dialog)
    assert not dialog.save_button.isEnabled()
    with qtbot.waitSignal(dialog.reloaded, timeout=10_000):
        dialog.reload_button.click()
    assert dialog.seen_version == version + 1 and dialog.save_button.isEnabled()
    assert f"record version {version + 1}" in dialog.heading.text()
    dialog.reject()


def test_amending_a_validated_trade_is_refused_with_the_services_words(
    qtbot: QtBot, demo_db: Database, demo_pane: Callable[..., Any]
) -> None:
    pane, _actor = demo_pane("supervisor")
    trade_id, ref = one(
        demo_db, "SELECT id, trade_ref FROM trades WHERE status = 'VALIDATED' ORDER BY id LIMIT 1"
    )
    show_trade(qtbot, pane, ref)
    dialog = open_repair_dialog(qtbot, pane)
    dialog.edits["price"].setText("1")
    with qtbot.waitSignal(dialog.refused, timeout=10_000) as refused:
        dialog.save_button.click()
    assert "correction workflow" in refused.args[0]
    assert one(demo_db, f"SELECT status FROM trades WHERE id = {trade_id}")[0] == "VALIDATED"
    dialog.reject()


def test_an_auditor_gets_no_repair_action_even_on_a_repair(
    qtbot: QtBot, demo_db: Database, demo_pane: Callable[..., Any]
) -> None:
    pane, _actor = demo_pane("auditor")
    (ref,) = one(demo_db, "SELECT trade_ref FROM trades WHERE status = 'REPAIR' ORDER BY id LIMIT 1")
    show_trade(qtbot, pane, ref)
    with qtbot.waitSignal(pane.detail_shown, timeout=10_000):
        pane.open_detail()
    assert not pane.repair_button.isVisible() and not pane.detail.repair_button.isVisible()
    pane.ask_repair()
    assert pane.repair_dialog is None


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_writes_what_the_view_shows(
    qtbot: QtBot, demo_db: Database, demo_pane: Callable[..., Any], tmp_path: Path, fmt: str
) -> None:
    pane, _actor = demo_pane("clerk1")
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.set_filter(BlotterFilter(statuses=("SETTLED", "FAILED")))
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.set_sort(Sort("gross_amount", True))
    pane.columns_button.set_visible("exception_codes", False)
    header = pane.table.horizontalHeader()
    header.moveSection(header.visualIndex(COLUMN_KEYS.index("gross_amount")), 1)
    qtbot.waitUntil(lambda: pane.model.count_exact, timeout=10_000)
    view_rows = all_view_rows(qtbot, pane)
    keys = pane.visible_columns()
    path = tmp_path / f"view.{fmt}"
    with qtbot.waitSignal(pane.exported, timeout=30_000):
        pane.export_to(str(path))
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8") as fh:
            lines = list(csv.reader(fh))
        head, body = lines[0], lines[1:]
    else:
        sheet = openpyxl.load_workbook(path, read_only=True).active
        values = [[("" if c is None else c) for c in r] for r in sheet.iter_rows(values_only=True)]
        head, body = [str(h) for h in values[0]], values[1:]
    labels = {c.key: c.label for c in COLUMNS}
    assert [h.split(" (")[0] for h in head] == [labels[k] for k in keys]  # same columns, same order
    assert len(body) == len(view_rows) == pane.model.rowCount()
    ref, gross = keys.index("trade_ref"), keys.index("gross_amount")
    assert [r[ref] for r in body] == [v[COLUMN_KEYS.index("trade_ref")] for v in view_rows]
    assert [Decimal(str(r[gross])) for r in body] == [v[COLUMN_KEYS.index("gross_amount")] for v in view_rows]


def all_view_rows(qtbot: QtBot, pane: TradeBlotterPane) -> list[tuple[Any, ...]]:
    done: list[bool] = []
    pane.model.when_loaded(range(pane.model.rowCount()), lambda: done.append(True))
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    return [pane.model.row_values(r) for r in range(pane.model.rowCount())]  # type: ignore[misc]


def test_the_file_menu_imports_and_exports_through_the_blotter(
    qtbot: QtBot, db: Database, users: dict[str, Actor], tasks: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(TradeBlotterPane, "ask_import", lambda self: asked.append("import"))
    monkeypatch.setattr(TradeBlotterPane, "ask_export", lambda self, fmt: asked.append(fmt))
    clerk = MainWindow(db, users["clerk1"], tasks)
    auditor = MainWindow(db, users["auditor"], tasks)
    for window in (clerk, auditor):
        qtbot.addWidget(window)
    assert clerk.import_action.isVisible() and clerk.import_action.shortcut().toString() == "Ctrl+I"
    assert not auditor.import_action.isVisible()  # an auditor changes nothing
    clerk.import_action.trigger()
    clerk.export_actions["xlsx"].trigger()
    auditor.export_actions["csv"].trigger()  # reading out is fine
    assert asked == ["import", "xlsx", "csv"]
