"""The trade blotter pane: a paged model over the database, filters and sorts done there, a place kept across
refreshes and live inserts, columns and views that follow the user, copy, and the auditor's read-only view.

The book is a few hundred trades and the model's pages are small (50 rows), so paging by keyset, from the end and
by offset all happen here as they do at a million rows. Expectations are computed in Python from the inserted rows.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QGuiApplication
from pytestqt.qtbot import QtBot
from sqlalchemy import insert, text, update

from app.models import Trade
from app.models.enums import ChangeAction, Side, TradeStatus
from app.services import audit, blotter, paging, preferences
from app.services.blotter import COLUMN_KEYS, BlotterFilter, Sort
from app.services.db import Database
from app.services.interrupt import Interrupted
from app.services.permissions import Actor
from app.views.blotter.column_chooser import COLUMNS_KEY
from app.views.blotter.saved_views import VIEWS_PREFIX
from app.views.monitor import ChangeFeed
from app.views.panes.base import Workspace
from app.views.panes.trade_blotter import TradeBlotterPane
from app.views.qt_models.blotter_model import LOADING_TEXT, BlotterModel, TradeIdRole
from app.views.tasks import TaskRunner

from . import factories
from .gui_helpers import show_pane, wait_idle

N = 437  # not a multiple of the page size: the last page is partial
PAGE = 50
TODAY = dt.date(2026, 11, 20)
sqlite_only = pytest.mark.parametrize("db", ["sqlite"], indirect=True)

PaneFactory = Callable[..., TradeBlotterPane]


def trade_row(i: int, rnd: random.Random, **over: Any) -> dict[str, Any]:
    return factories.trade_row(i, rnd, latest=TODAY, **over)


@pytest.fixture
def book(db: Database, users: dict[str, Actor]) -> list[dict[str, Any]]:
    rnd = random.Random(11)
    rows = [trade_row(i, rnd) for i in range(N)]
    # Some repairs are clerk1's, some clerk2's, the rest unassigned ("My repairs" must tell them apart).
    for i, r in enumerate(r for r in rows if r["status"] is TradeStatus.REPAIR):
        r["owner_id"] = [users["clerk1"].user_id, users["clerk2"].user_id, None][i % 3]
    with db.write() as s:
        s.execute(insert(Trade), rows)
        ids = dict(s.execute(text("SELECT trade_ref, id FROM trades")).all())
    for r in rows:
        r["id"] = ids[r["trade_ref"]]
    return rows


@pytest.fixture
def open_pane(qtbot: QtBot, db: Database, tasks: TaskRunner, monkeypatch: pytest.MonkeyPatch) -> PaneFactory:
    monkeypatch.setattr(TradeBlotterPane, "page_size", PAGE)

    def factory(actor: Actor, *, wait_columns: bool = True) -> TradeBlotterPane:
        pane = TradeBlotterPane(Workspace(db=db, actor=actor, tasks=tasks))
        show_pane(qtbot, pane, (1200, 700), *([pane.columns_restored] if wait_columns else []))
        wait_idle(qtbot, pane)
        return pane

    return factory


def all_rows(qtbot: QtBot, model: BlotterModel) -> list[tuple[Any, ...]]:
    """Every row of the current query, paged in through the model as the view would (keyset and jumps)."""
    n = model.rowCount()
    done: list[bool] = []
    model.when_loaded(range(n), lambda: done.append(True))
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    rows = [model.row_values(r) for r in range(n)]
    assert all(r is not None for r in rows)
    return rows  # type: ignore[return-value]


def refs(rows: list[tuple[Any, ...]]) -> list[str]:
    i = COLUMN_KEYS.index("trade_ref")
    return [r[i] for r in rows]


def expected(
    book: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool], key: str, desc: bool
) -> list[str]:
    def k(r: dict[str, Any]) -> Any:
        v = r[key]
        if key == "settlement_date" and v is None:
            v = dt.date(9999, 12, 31)
        return getattr(v, "value", v)

    rows = sorted((r for r in book if keep(r)), key=lambda r: (k(r), r["id"]), reverse=desc)
    return [r["trade_ref"] for r in rows]


# --- the model ---------------------------------------------------------------------------------------------------


@sqlite_only
def test_the_model_passes_the_qt_model_tester_while_it_pages(
    qtbot: QtBot, qtmodeltester: Any, db: Database, users: dict[str, Actor], book: list, tasks: TaskRunner
) -> None:
    model = BlotterModel(db, users["clerk1"], tasks, page_size=PAGE)
    with qtbot.waitSignal(model.query_loaded, timeout=10_000):
        model.set_query(BlotterFilter(), Sort("trade_date", True))
    qtmodeltester.check(
        model
    )  # stays attached: the count arriving, pages loading, a new sort are checked too
    qtbot.waitUntil(lambda: model.count_exact)
    assert model.rowCount() == N
    assert model.data(model.index(N - 1, 0)) == LOADING_TEXT  # not read yet: a placeholder, never a query
    with qtbot.waitSignal(model.page_loaded, timeout=10_000):
        pass  # the placeholder asked for the last page
    assert model.data(model.index(N - 1, 0)) != LOADING_TEXT
    with qtbot.waitSignal(model.query_loaded, timeout=10_000):
        model.set_query(sort=Sort("gross_amount", False))
    qtmodeltester.check(model)


def _misread_rows(model: BlotterModel) -> list[int]:
    """The loaded rows that do not read as their own values format (every column, through data())."""
    bad = []
    loaded = [r for r in range(model.rowCount()) if model.is_row_loaded(r)]
    assert loaded
    for r in loaded:
        values = model.row_values(r)
        assert values is not None
        shown = [model.data(model.index(r, c)) for c in range(model.columnCount())]
        if shown != [model.fmt.text(k, v) for k, v in zip(COLUMN_KEYS, values, strict=True)]:
            bad.append(r)
    return bad


def test_rows_worked_out_as_they_arrive_or_near_the_screen_read_as_their_own_values(
    qtbot: QtBot, qtmodeltester: Any, open_pane: PaneFactory, users: dict[str, Actor], book: list
) -> None:
    """On screen the looks of arriving rows, of the rows a screenful either side and of renamed owners are worked
    out a few at a time before they are swapped in: every loaded row must still read exactly as its own values,
    in the right row, through scrolls, jumps, a sort and a rename, and the model must stay a valid Qt model."""
    pane = open_pane(users["clerk1"])
    model, table = pane.model, pane.table
    qtmodeltester.check(model)
    # The owners' names arrive with the user's settings, beside the first page: the rows on screen are worked out
    # anew with them, then swapped in.
    qtbot.waitUntil(lambda: not _misread_rows(model), timeout=10_000)
    for row in (PAGE + 3, 3 * PAGE + 10, N - 25, 7, 2 * PAGE - 1):
        table.scrollTo(model.index(row, 0), table.ScrollHint.PositionAtTop)
        wait_idle(qtbot, pane)
        # A few rows on, among rows already read: those a screenful either side are worked out while idle (the
        # check reads every loaded row, so it comes after).
        table.scrollTo(model.index(row + 4, 0), table.ScrollHint.PositionAtTop)
        wait_idle(qtbot, pane)
        qtbot.wait(50)
        assert _misread_rows(model) == []
    with qtbot.waitSignal(model.query_loaded, timeout=10_000):
        pane.table.horizontalHeader().sectionClicked.emit(COLUMN_KEYS.index("gross_amount"))
    wait_idle(qtbot, pane)
    assert _misread_rows(model) == []
    owner = users["clerk1"].user_id
    owner_col = COLUMN_KEYS.index("owner_id")
    owned = [r for r in range(model.rowCount()) if (v := model.row_values(r)) and v[owner_col] == owner]
    assert owned  # the book gives clerk1 some repairs
    model.set_usernames({owner: "Renamed Clerk"})
    qtbot.waitUntil(lambda: not _misread_rows(model), timeout=10_000)
    assert {model.data(model.index(r, owner_col)) for r in owned} == {"Renamed Clerk"}


# Counts to a hundred million: many seconds on both backends (a page far into a million rows, in miniature).
ENDLESS = text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000) SELECT count(*) FROM n"
)


def test_a_page_scrolled_past_stops_on_the_database_and_never_shows(
    qtbot: QtBot,
    qtmodeltester: Any,
    open_pane: PaneFactory,
    db: Database,
    users: dict[str, Actor],
    book: list,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A jump into the middle whose page is slow, then a jump to the end before it arrives: the middle page's
    statement is stopped where it runs (it would hold a server core for nothing), the end shows its own rows, and
    the middle reads right when the user comes back; the pooled connections keep answering throughout."""
    pane = open_pane(users["clerk1"])
    model, table = pane.model, pane.table
    qtmodeltester.check(model)
    real = blotter.fetch_page
    held, stopped = threading.Event(), []

    def fetch_page(*args: Any, **kw: Any) -> Any:
        if kw.get("offset") and not held.is_set():  # the first jump's page: slow at the database
            held.set()
            try:
                with paging.reader(db) as conn:
                    conn.execute(ENDLESS).scalar()
            except Interrupted:
                stopped.append(kw["offset"])
                raise
        return real(*args, **kw)

    monkeypatch.setattr(blotter, "fetch_page", fetch_page)
    want = expected(book, lambda r: True, pane.sort.key, pane.sort.descending)
    middle = 5 * PAGE + 10

    def jumped() -> bool:
        # Again if a reload of the pane's opening put the view back at the top meanwhile.
        if not held.is_set():
            table.scrollTo(model.index(middle, 0), table.ScrollHint.PositionAtTop)
        return held.is_set()

    qtbot.waitUntil(jumped, timeout=10_000)
    table.scrollToBottom()
    wait_idle(qtbot, pane)
    qtbot.waitUntil(lambda: bool(stopped), timeout=15_000)  # stopped, long before the statement would end
    first, last = table.visible_rows()
    assert last == N - 1
    assert refs([model.row_values(r) for r in range(first, last + 1)]) == want[first : last + 1]
    table.scrollTo(model.index(middle, 0), table.ScrollHint.PositionAtTop)
    wait_idle(qtbot, pane)
    first, last = table.visible_rows()
    assert refs([model.row_values(r) for r in range(first, last + 1)]) == want[first : last + 1]
    assert refs(all_rows(qtbot, model)) == want


@sqlite_only
def test_pages_arrive_by_keyset_from_the_end_and_by_offset_in_one_consistent_order(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, tasks: TaskRunner
) -> None:
    model = BlotterModel(db, users["clerk1"], tasks, page_size=PAGE)
    sort = Sort("settlement_date", False)  # repairs have no settlement date: they sort last
    with qtbot.waitSignal(model.query_loaded, timeout=10_000):
        model.set_query(BlotterFilter(), sort)
    qtbot.waitUntil(lambda: model.count_exact)
    # Ask for the last page first, then one in the middle, then the rest: every access path is used.
    for rows in ([N - 1], [5 * PAGE + 3]):
        done: list[bool] = []
        model.when_loaded(rows, lambda done=done: done.append(True))
        qtbot.waitUntil(lambda done=done: bool(done))
    assert refs(all_rows(qtbot, model)) == expected(book, lambda r: True, "settlement_date", False)


# --- filtering and sorting through the pane, on both backends ------------------------------------------------------


def test_filter_bar_and_header_sort_query_the_database(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory
) -> None:
    pane = open_pane(users["clerk1"])
    assert pane.model.rowCount() == N and pane.count_label.text() == f"{N} trades"
    bar = pane.filter_bar
    bar.status_actions["SETTLED"].setChecked(True)
    bar.status_actions["FAILED"].setChecked(True)
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        bar.account.setText("acc2")
        bar.account.returnPressed.emit()
    header = pane.table.horizontalHeader()
    gross = COLUMN_KEYS.index("gross_amount")
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        header.sectionClicked.emit(gross)  # first click on an amount: biggest first
    wait_idle(qtbot, pane)
    assert pane.sort == Sort("gross_amount", True)
    assert header.sortIndicatorSection() == gross
    keep = lambda r: r["status"].value in ("SETTLED", "FAILED") and r["account_code"] == "ACC2"  # noqa: E731
    want = expected(book, keep, "gross_amount", True)
    assert want and refs(all_rows(qtbot, pane.model)) == want
    assert pane.count_label.text() == f"{len(want)} trades"

    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        header.sectionClicked.emit(gross)  # again: smallest first
    assert refs(all_rows(qtbot, pane.model)) == list(reversed(want))

    # A column without an index cannot be sorted: the sort and its arrow stay as they were.
    header.sectionClicked.emit(COLUMN_KEYS.index("exception_codes"))
    assert pane.sort == Sort("gross_amount", False) and header.sortIndicatorSection() == gross

    with (
        qtbot.waitSignal(pane.totals_shown, timeout=10_000) as totals,
        qtbot.waitSignal(pane.model.query_loaded, timeout=10_000),
    ):
        bar.clear()
    assert totals.args[0].count == N
    usd = sum((r["gross_amount"] for r in book if r["currency"] == "USD"), Decimal(0))
    assert totals.args[0].gross_by_currency["USD"] == usd.quantize(Decimal("0.01"))


def test_quick_filters_my_repairs_today_and_failing_validation(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory
) -> None:
    clerk = users["clerk1"]
    pane = open_pane(clerk)
    bar = pane.filter_bar
    bar._today = TODAY
    sort = pane.sort
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        bar.my_repairs.click()
    mine = expected(
        book,
        lambda r: r["status"] is TradeStatus.REPAIR and r.get("owner_id") in (clerk.user_id, None),
        sort.key,
        sort.descending,
    )
    assert refs(all_rows(qtbot, pane.model)) == mine
    assert bar.status_button.text() == "Repair"
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        bar.my_repairs.click()
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        bar.today_button.click()
    assert bar.trade_from.value() == TODAY == bar.trade_to.value()
    assert refs(all_rows(qtbot, pane.model)) == expected(
        book, lambda r: r["trade_date"] == TODAY, sort.key, sort.descending
    )
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        bar.today_button.click()
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        bar.failing.click()
    assert refs(all_rows(qtbot, pane.model)) == expected(
        book, lambda r: bool(r["exception_codes"]), sort.key, sort.descending
    )


# --- keeping the user's place -------------------------------------------------------------------------------------


def insert_elsewhere(db: Database, actor: Actor, rows: list[dict[str, Any]]) -> None:
    """Another workstation books trades and announces them on the change feed, as an import does."""
    with db.write() as s:
        s.execute(insert(Trade), rows)
        audit.publish(s, actor, "trades", None, ChangeAction.BULK, {"action": "import"})


def follow_changes(
    qtbot: QtBot, db: Database, actor: Actor, tasks: TaskRunner, pane: TradeBlotterPane
) -> ChangeFeed:
    """A change feed polling every 50 ms that tells the pane, started and past its first read."""
    feed = ChangeFeed(db, actor, tasks, interval_ms=50)
    feed.changed.connect(pane.on_changed)
    feed.start()
    qtbot.waitUntil(lambda: feed.last_id is not None)
    return feed


def test_a_live_insert_keeps_the_top_trade_and_the_selection(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory, tasks: TaskRunner
) -> None:
    pane = open_pane(users["clerk1"])
    feed = follow_changes(qtbot, db, users["clerk1"], tasks, pane)
    table, model = pane.table, pane.model
    table.scrollTo(model.index(180, 0), table.ScrollHint.PositionAtTop)
    wait_idle(qtbot, pane)
    top_row = table.rowAt(0)
    assert top_row == 180
    top_id = model.trade_id(top_row)
    pane.select_row(190)
    selected = model.trade_id(190)
    # Newer trades sort above everything on screen (trade date descending), and one far below.
    rnd = random.Random(5)
    new = [
        trade_row(1000 + i, rnd, trade_date=TODAY + dt.timedelta(days=1), status=TradeStatus.VALIDATED)
        for i in range(7)
    ] + [trade_row(2000, rnd, trade_date=TODAY - dt.timedelta(days=30), status=TradeStatus.VALIDATED)]
    with qtbot.waitSignal(model.window_applied, timeout=10_000):
        insert_elsewhere(db, users["clerk2"], new)
    wait_idle(qtbot, pane)
    feed.stop()
    assert model.rowCount() == N + 8
    # Same trade on top of the view (now 7 rows further down the list), same trade selected.
    assert table.rowAt(0) == 187 and model.trade_id(table.rowAt(0)) == top_id
    assert pane.current_trade_id() == selected and pane.selected_trade_ids() == [selected]
    assert model.trade_id(197) == selected


def test_a_live_insert_at_the_bottom_of_the_list_keeps_the_top_trade(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory, tasks: TaskRunner
) -> None:
    # At the end of the list the view cannot scroll further: the trades arriving above must still not move what the
    # clerk sees, although the place to put the top row back is past where the list could scroll before they came.
    pane = open_pane(users["clerk1"])
    feed = follow_changes(qtbot, db, users["clerk1"], tasks, pane)
    table, model = pane.table, pane.model
    bar = table.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)
    bar.setValue(bar.maximum())
    wait_idle(qtbot, pane)
    top_row = table.rowAt(0)
    assert top_row > N - 40
    top_id = model.trade_id(top_row)
    pane.select_row(N - 1)
    selected = model.trade_id(N - 1)
    rnd = random.Random(6)
    new = [
        trade_row(3000 + i, rnd, trade_date=TODAY + dt.timedelta(days=1), status=TradeStatus.VALIDATED)
        for i in range(40)
    ]
    with qtbot.waitSignal(model.window_applied, timeout=10_000):
        insert_elsewhere(db, users["clerk2"], new)
    wait_idle(qtbot, pane)
    feed.stop()
    assert model.rowCount() == N + 40
    assert table.rowAt(0) == top_row + 40 and model.trade_id(table.rowAt(0)) == top_id
    assert pane.current_trade_id() == selected and model.trade_id(N + 39) == selected


def test_f5_refresh_keeps_the_place_and_a_filter_change_keeps_the_selection(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory
) -> None:
    pane = open_pane(users["clerk1"])
    table, model = pane.table, pane.model
    table.scrollTo(model.index(300, 0), table.ScrollHint.PositionAtTop)
    wait_idle(qtbot, pane)
    pane.select_row(305)
    chosen = model.trade_id(305)
    before = (table.rowAt(0), model.trade_id(table.rowAt(0)))
    with qtbot.waitSignal(model.window_applied, timeout=10_000):
        qtbot.keyClick(table, Qt.Key.Key_F5)
    wait_idle(qtbot, pane)
    assert (table.rowAt(0), model.trade_id(table.rowAt(0))) == before
    assert pane.current_trade_id() == chosen
    # Change the sort: the trade stays selected wherever it now is.
    status = next(r for r in book if r["id"] == chosen)["status"].value
    with qtbot.waitSignal(model.query_loaded, timeout=10_000):
        pane.set_sort(Sort("trade_ref", False))
    qtbot.waitUntil(lambda: pane.current_trade_id() == chosen, timeout=10_000)
    assert model.data(model.index(table.currentIndex().row(), 0), TradeIdRole) == chosen
    bar = pane.filter_bar
    with qtbot.waitSignal(model.query_loaded, timeout=10_000):
        bar.status_actions[status].setChecked(True)
    qtbot.waitUntil(lambda: pane.current_trade_id() == chosen, timeout=10_000)


# --- columns and views, per user ----------------------------------------------------------------------------------


@sqlite_only
def test_columns_are_saved_per_user_and_come_back(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory
) -> None:
    clerk, other = users["clerk1"], users["clerk2"]
    pane = open_pane(clerk)
    header = pane.table.horizontalHeader()
    chooser = pane.columns_button
    chooser.set_visible("exception_codes", False)
    chooser.set_visible("commission", True)
    header.moveSection(header.visualIndex(COLUMN_KEYS.index("isin")), 0)
    header.resizeSection(COLUMN_KEYS.index("trade_ref"), 222)
    with qtbot.waitSignal(pane.columns_saved, timeout=10_000):
        pass
    state = pane.columns_state()
    assert state[0]["key"] == "isin"
    assert preferences.get(db, clerk, COLUMNS_KEY)["columns"] == state
    assert (
        pane.visible_columns()[:2] == ["isin", "trade_ref"]
        and "exception_codes" not in pane.visible_columns()
    )

    again = open_pane(clerk)
    assert again.columns_state() == state
    assert again.table.horizontalHeader().sectionSize(COLUMN_KEYS.index("trade_ref")) == 222
    theirs = open_pane(other)
    assert theirs.visible_columns()[0] == "trade_ref" and "exception_codes" in theirs.visible_columns()


@sqlite_only
def test_saved_views_hold_filter_sort_and_columns_per_user(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory
) -> None:
    clerk = users["clerk1"]
    pane = open_pane(clerk)
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.set_filter(BlotterFilter(statuses=("FAILED",), counterparty="CP1"))
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.set_sort(Sort("price", False))
    pane.columns_button.set_visible("net_amount", False)
    with qtbot.waitSignal(pane.views_button.saved, timeout=10_000):
        pane.views_button.save_as("Failed  with CP1")
    assert pane.views_button.text() == "View: Failed with CP1"
    assert preferences.keys(db, clerk, VIEWS_PREFIX) == [VIEWS_PREFIX + "Failed with CP1"]
    assert preferences.keys(db, users["clerk2"], VIEWS_PREFIX) == []

    fresh = open_pane(clerk)
    qtbot.waitUntil(lambda: fresh.views_button.names == ["Failed with CP1"])
    assert fresh.model.rowCount() == N
    with qtbot.waitSignal(fresh.model.query_loaded, timeout=10_000):
        fresh.views_button.open_view("Failed with CP1")
    assert fresh.filter_bar.current() == BlotterFilter(statuses=("FAILED",), counterparty="CP1")
    assert fresh.sort == Sort("price", False) and "net_amount" not in fresh.visible_columns()
    want = expected(
        book, lambda r: r["status"] is TradeStatus.FAILED and r["counterparty_code"] == "CP1", "price", False
    )
    assert refs(all_rows(qtbot, fresh.model)) == want
    with qtbot.waitSignal(fresh.views_button.deleted, timeout=10_000):
        fresh.views_button.delete("Failed with CP1")
    assert preferences.keys(db, clerk, VIEWS_PREFIX) == []


# --- copy, keyboard, permissions ----------------------------------------------------------------------------------


@sqlite_only
def test_ctrl_c_copies_the_selected_rows_as_the_view_shows_them(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory
) -> None:
    pane = open_pane(users["clerk1"])
    pane.columns_button.set_visible("exception_codes", False)
    sm, model = pane.table.selectionModel(), pane.model
    pane.select_row(1)
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    sm.select(model.index(3, 0), flags)
    sm.select(model.index(N - 1, 0), flags)  # not loaded yet: its page is read before the copy
    with qtbot.waitSignal(pane.copied, timeout=10_000):
        qtbot.keyClick(pane.table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QGuiApplication.clipboard().text().splitlines()
    keys = pane.visible_columns()
    by_id = {r["id"]: r for r in book}
    assert lines[0].split("\t") == [
        model.headerData(COLUMN_KEYS.index(k), Qt.Orientation.Horizontal) for k in keys
    ]
    assert len(lines) == 4
    for line, row in zip(lines[1:], [1, 3, N - 1], strict=True):
        trade = by_id[model.trade_id(row)]
        cells = line.split("\t")
        assert cells[keys.index("trade_ref")] == trade["trade_ref"]
        assert cells[keys.index("gross_amount")] == f"{trade['gross_amount']:,.2f}"
        assert cells[keys.index("trade_date")] == trade["trade_date"].isoformat()
        assert cells[keys.index("status")] == trade["status"].value.replace("_", " ").capitalize()


@sqlite_only
def test_keyboard_ctrl_f_enter_and_the_detail_panel(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory
) -> None:
    pane = open_pane(users["clerk1"])
    pane.activateWindow()
    qtbot.waitUntil(pane.isActiveWindow)
    pane.table.setFocus()
    qtbot.keyClick(pane.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert pane.filter_bar.text.hasFocus()
    pane.table.setFocus()
    pane.select_row(2)
    trade_id = pane.model.trade_id(2)
    with qtbot.waitSignal(pane.detail_shown, timeout=10_000) as shown:
        qtbot.keyClick(pane.table, Qt.Key.Key_Return)
    assert shown.args == [trade_id]
    assert pane.detail.isVisible()
    trade = next(r for r in book if r["id"] == trade_id)
    assert trade["trade_ref"] in pane.detail.title.text()
    with qtbot.waitSignal(pane.detail_shown, timeout=10_000) as shown:
        qtbot.keyClick(pane.table, Qt.Key.Key_Down)
    assert shown.args == [pane.model.trade_id(3)]


def test_an_auditor_sees_everything_and_no_edit_action(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory
) -> None:
    pane = open_pane(users["auditor"])
    assert pane.model.rowCount() == N
    assert not pane.repair_button.isVisible() and not pane.import_button.isVisible()
    repair = next(
        i for i in range(N) if pane.model.row_values(i) and "REPAIR" in str(pane.model.row_values(i)[1])
    )
    pane.select_row(repair)
    pane.open_detail()
    assert not pane.detail.repair_button.isVisible()
    pane.ask_repair()  # the shortcut path does nothing either
    assert pane.repair_dialog is None
    clerk = open_pane(users["clerk1"])
    assert clerk.repair_button.isVisible() and clerk.import_button.isVisible()


def test_the_blotter_counts_what_the_service_counts(
    db: Database, users: dict[str, Actor], book: list
) -> None:
    """The pane's count label and footer come from these; one sanity check of the new filter fields."""
    clerk = users["clerk1"]
    mine = blotter.count(db, clerk, BlotterFilter(statuses=("REPAIR",), owner_or_unassigned=clerk.user_id))
    assert mine == sum(
        1 for r in book if r["status"] is TradeStatus.REPAIR and r.get("owner_id") in (clerk.user_id, None)
    )
    assert blotter.count(db, clerk, BlotterFilter(with_exceptions=True)) == sum(
        1 for r in book if r["exception_codes"]
    )
    with db.write() as s:
        s.execute(update(Trade).where(Trade.trade_ref == "T00000").values(owner_id=clerk.user_id))
    window = blotter.window(db, clerk, BlotterFilter(), Sort("trade_ref", False), top_row=0, visible=10)
    assert window.count == N and window.start == 0 and len(window.rows) == 200 and window.top == 0


@pytest.mark.parametrize("plan", [blotter.PLANNER, blotter.FILTER_INDEX, blotter.SORT_INDEX])
def test_every_access_path_pages_the_same_rows(
    db: Database, users: dict[str, Actor], book: list, monkeypatch: pytest.MonkeyPatch, plan: str
) -> None:
    """The blotter picks the access path of a filtered page itself (see blotter._choose_plan); every path must
    give exactly the same rows, by keyset forwards and backwards, from the end, by offset and around a trade."""
    monkeypatch.setattr(blotter, "_choose_plan", lambda *_args: plan)
    clerk = users["clerk1"]
    flt = BlotterFilter(
        statuses=("SETTLED", "FAILED", "REPAIR"), side="BUY", owner_or_unassigned=clerk.user_id
    )
    sort = Sort("gross_amount", True)
    want = expected(
        book,
        lambda r: (
            r["status"].value in ("SETTLED", "FAILED", "REPAIR")
            and r["side"] is Side.BUY
            and r.get("owner_id") in (clerk.user_id, None)
        ),
        "gross_amount",
        True,
    )
    pages, after = [], None
    while True:
        page = blotter.fetch_page(db, clerk, flt, sort, limit=17, after=after)
        pages.append(page)
        if len(page.rows) < 17:
            break
        after = page.last_key
    assert refs([r for p in pages for r in p.rows]) == want
    back = blotter.fetch_page(db, clerk, flt, sort, limit=17, before=pages[2].first_key)
    assert back.rows == pages[1].rows
    assert refs(blotter.fetch_page(db, clerk, flt, sort, limit=5, from_end=True).rows) == want[-5:]
    assert refs(blotter.fetch_page(db, clerk, flt, sort, limit=5, offset=20).rows) == want[20:25]
    assert (
        refs(blotter.fetch_page(db, clerk, flt, sort, limit=5, from_end=True, offset=3).rows) == want[-8:-3]
    )
    top = next(r["id"] for r in book if r["trade_ref"] == want[30])
    window = blotter.window(db, clerk, flt, sort, top_id=top, visible=10, page_size=17)
    assert window.top == 30 and window.start == 17 and refs(window.rows) == want[17:51]


@sqlite_only
def test_the_plan_follows_how_many_rows_match(
    db: Database, users: dict[str, Actor], book: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Few matches: read them through their index; many: walk the sort index (SQLite counts through the index)."""
    few = BlotterFilter(statuses=("FAILED",))
    with db.read() as session:
        s = session.connection()
        assert blotter._choose_plan(s, few, Sort("gross_amount", True)) == blotter.FILTER_INDEX
        # Sorted by the filtered column, its index does both: nothing to choose. A text search: nothing to count.
        assert blotter._choose_plan(s, few, Sort("status", True)) == blotter.PLANNER
        assert blotter._choose_plan(s, BlotterFilter(text="T0"), Sort()) == blotter.PLANNER
        monkeypatch.setattr(blotter, "FEW_ROWS", 10)
        assert blotter._choose_plan(s, few, Sort("gross_amount", True)) == blotter.SORT_INDEX


@sqlite_only
def test_a_drill_down_shows_exactly_the_trades_sent_until_its_chip_is_cleared(
    qtbot: QtBot, db: Database, users: dict[str, Actor], book: list, open_pane: PaneFactory
) -> None:
    pane = open_pane(users["clerk1"])
    chosen = [r for r in book if r["status"] is TradeStatus.REPAIR][:7]
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.drill_down({"ids": [r["id"] for r in chosen], "title": "SLA breached: repair within 4 h"})
    wait_idle(qtbot, pane)
    want = expected(book, lambda r: r in chosen, pane.sort.key, pane.sort.descending)
    assert refs(all_rows(qtbot, pane.model)) == want and len(want) == 7
    chip = pane.filter_bar.drill_chip
    assert chip.isVisible() and chip.text().startswith("SLA breached: repair within 4 h (7)")

    # An empty drill-down shows nothing (an SLA tile with no breached items), not everything.
    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        pane.drill_down({"ids": [], "title": "Nothing breached"})
    wait_idle(qtbot, pane)
    assert pane.model.rowCount() == 0

    with qtbot.waitSignal(pane.model.query_loaded, timeout=10_000):
        chip.click()
    wait_idle(qtbot, pane)
    assert pane.model.rowCount() == N and not chip.isVisible()
