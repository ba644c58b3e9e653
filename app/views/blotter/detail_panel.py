"""The detail panel under the blotter: everything about the selected trade, read in the background.

Tabs: **Trade** (every field, open exceptions first), **Versions** (what the front office sent, version by version,
with the fields a version changed highlighted), **History** (lifecycle timestamps and the audit entries: who did
what, before and after), **Settlement** (linked settlement instructions and reconciliation breaks).

The row already on screen is shown at once; the full description comes from the capture service's
``trade_detail(db, actor, trade_id)`` through the TaskRunner. A newer selection always wins: a slow answer for the
previous trade is dropped when it arrives.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.services.blotter import COLUMN_KEYS, COLUMNS
from app.views import resources
from app.views.blotter import capture_api
from app.views.qt_models.blotter_model import STATUS_TONES, TONE_TEXT, CellFormat
from app.views.qt_models.status_counts import status_label
from app.views.tasks import TaskFailure, TaskHandle

if TYPE_CHECKING:
    from app.views.panes.base import Workspace

CHANGED_BACKGROUND = QColor("#fff3c4")  # a field the version changed: the eye finds the amendment at once
ROW_HEIGHT = 22
LABELS = {c.key: c.label for c in COLUMNS} | {
    "source_ref": "Source ref",
    "instrument_id": "Instrument id",
    "account_id": "Account id",
    "counterparty_id": "Counterparty id",
    "allocated_at": "Allocated",
    "confirmed_at": "Confirmed",
    "affirmed_at": "Affirmed",
    "our_ssi_id": "Our SSI",
    "their_ssi_id": "Their SSI",
    "version": "Version",
    "updated_at": "Updated",
    "created_at": "Created",
    "updated_by_id": "Updated by",
    "claimed_at": "Claimed",
}
# Keys whose value is an id of reference data shown in words below the fields (the line of that title): the id
# says nothing to a clerk when the words are there. Without them (a trade in repair may lack its account) it shows.
REFERENCE_IDS = {
    "instrument_id": "Instrument",
    "account_id": "Account",
    "counterparty_id": "Counterparty",
    "our_ssi_id": "Our SSI",
    "their_ssi_id": "Their SSI",
}
LIFECYCLE = ("trade_time", "allocated_at", "confirmed_at", "affirmed_at", "settlement_date")
# Keys of a version's payload that are bookkeeping, not trade fields (shown in the column header instead).
VERSION_META = frozenset({"fo_version", "action", "batch", "line", "raw"})


def as_mapping(obj: Any) -> dict[str, Any]:
    """A dataclass, a mapping or a plain object as a dict (the service's answer, whatever its shape)."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "_asdict"):
        return dict(obj._asdict())
    return {k: v for k, v in vars(obj).items() if not k.startswith("_")}


def pick(d: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in d and d[name] is not None:
            return d[name]
    return None


def label_of(key: str) -> str:
    return LABELS.get(key, key.replace("_", " ").capitalize())


class _Table(QTableWidget):
    """A compact read-only table for the panel's lists (a handful of rows: no model of its own needed)."""

    def __init__(self, headers: list[str], parent: QWidget | None = None) -> None:
        super().__init__(0, len(headers), parent)
        self.setHorizontalHeaderLabels(headers)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.setWordWrap(False)
        self.setShowGrid(False)
        self.verticalHeader().hide()
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.horizontalHeader().setStretchLastSection(True)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setDefaultAlignment(
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        )

    def fill(self, rows: list[list[str]], tints: list[QColor | None] | None = None) -> None:
        self.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if tints and tints[r] is not None:
                    item.setBackground(QBrush(tints[r]))
                self.setItem(r, c, item)
        # Columns fit their text once per fill: a few rows, so measuring them is cheap (unlike the blotter).
        self.resizeColumnsToContents()
        for c in range(self.columnCount()):
            self.setColumnWidth(c, min(self.columnWidth(c) + 12, 360))


class DetailPanel(QFrame):
    """The selected trade, in four tabs; ``load`` shows a trade, ``reload`` reads the same one again."""

    #: The repair button in the panel was pressed.
    repair_requested = Signal()
    #: The full detail of a trade is on screen (its id).
    loaded = Signal(int)

    def __init__(
        self,
        workspace: Workspace,
        can_repair: bool,
        parent: QWidget | None = None,
        *,
        fmt: CellFormat | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("detailPanel")
        self.ws = workspace
        self.can_repair = can_repair
        self.fmt = fmt or CellFormat(workspace.actor.timezone)
        try:
            self.zone = ZoneInfo(workspace.actor.timezone)
        except Exception:
            self.zone = ZoneInfo("UTC")
        self.trade_id: int | None = None
        self.detail: dict[str, Any] = {}
        self._task: TaskHandle | None = None
        self._gen = 0
        self._on_shown: Callable[[], None] | None = None

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 6, 0, 0)
        outer.setSpacing(4)
        top = QHBoxLayout()
        self.title = QLabel("No trade selected")
        self.title.setObjectName("detailTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.state = QLabel("")
        self.state.setObjectName("muted")
        self.repair_button = QToolButton()
        self.repair_button.setText("Repair…")
        self.repair_button.setIcon(resources.icon("repair"))
        self.repair_button.clicked.connect(self.repair_requested)
        self.repair_button.setVisible(False)
        top.addWidget(self.title)
        top.addWidget(self.state, 1)
        top.addWidget(self.repair_button)
        outer.addLayout(top)

        self.exceptions_label = QLabel()
        self.exceptions_label.setObjectName("detailExceptions")
        self.exceptions_label.setWordWrap(True)
        self.exceptions_label.hide()
        outer.addWidget(self.exceptions_label)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.fields_box = QWidget()
        self.fields_box.setObjectName("detailFields")
        self.fields_grid = QGridLayout(self.fields_box)
        self.fields_grid.setContentsMargins(8, 6, 8, 6)
        self.fields_grid.setHorizontalSpacing(14)
        self.fields_grid.setVerticalSpacing(3)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.fields_box)
        self.tabs.addTab(scroll, "Trade")
        self.versions = _Table(["Field"])
        self.tabs.addTab(self.versions, "Versions")
        history = QWidget()
        hl = QVBoxLayout(history)
        hl.setContentsMargins(0, 4, 0, 0)
        self.lifecycle = QLabel()
        self.lifecycle.setWordWrap(True)
        self.lifecycle.setObjectName("muted")
        self.audit = _Table(["When", "Who", "What", "Changes"])
        hl.addWidget(self.lifecycle)
        hl.addWidget(self.audit, 1)
        self.tabs.addTab(history, "History")
        settlement = QWidget()
        sl = QVBoxLayout(settlement)
        sl.setContentsMargins(0, 4, 0, 0)
        self.instructions = _Table(
            ["Instruction", "Type", "Status", "Reason", "Settle date", "Quantity", "Amount"]
        )
        self.breaks = _Table(["Break", "Type", "Status", "Category", "Amount", "Owner", "Opened"])
        sl.addWidget(QLabel("Settlement instructions"))
        sl.addWidget(self.instructions, 1)
        sl.addWidget(QLabel("Reconciliation breaks"))
        sl.addWidget(self.breaks, 1)
        self.tabs.addTab(settlement, "Settlement")
        outer.addWidget(self.tabs, 1)
        self.note = QLabel("")
        self.note.setObjectName("muted")
        self.note.setWordWrap(True)
        outer.addWidget(self.note)

    # --- loading ------------------------------------------------------------------------------------------------

    def show_nothing(self) -> None:
        self._gen += 1
        self.trade_id = None
        self.title.setText("No trade selected")
        self.state.setText("Select a trade and press Enter.")
        self.repair_button.setVisible(False)
        self.exceptions_label.hide()
        self._fill_fields({})
        for table in (self.versions, self.audit, self.instructions, self.breaks):
            table.setRowCount(0)

    def load(
        self, trade_id: int, row: tuple[Any, ...] | None = None, *, on_shown: Callable[[], None] | None = None
    ) -> None:
        """Show ``trade_id``: the blotter row at once (if given), then the full detail from the service."""
        if trade_id == self.trade_id and self.detail and self._task is None:
            if on_shown is not None:
                on_shown()
            return
        self._gen += 1
        gen = self._gen
        self.trade_id = trade_id
        self.detail = {}
        self._on_shown = on_shown
        if row is not None:
            self._show_trade(dict(zip(COLUMN_KEYS, row, strict=True)), partial=True)
        if self._task is not None:
            self._task.cancel()
        self.note.setText("Loading…")
        self._task = self.ws.tasks.call(
            partial(capture_api.call, "trade_detail"),
            self.ws.db,
            self.ws.actor,
            trade_id,
            on_done=lambda d: self._loaded(gen, d),
            on_error=lambda f: self._failed(gen, f),
            label="Loading the trade",
            quiet=True,
            owner=self,
        )

    def reload(self) -> None:
        if self.trade_id is not None:
            trade_id, self.trade_id = self.trade_id, None
            self.load(trade_id)

    def _loaded(self, gen: int, detail: object) -> None:
        if gen != self._gen:
            return
        self._task = None
        self.detail = as_mapping(detail)
        self.note.setText("")
        trade = as_mapping(pick(self.detail, "trade", "fields")) or {
            k: v for k, v in self.detail.items() if not isinstance(v, list | dict)
        }
        self._show_trade(trade, partial=False, reference=self._reference_lines())
        self._show_exceptions(pick(self.detail, "exceptions") or [])
        self._show_versions(pick(self.detail, "versions") or [])
        self._show_history(trade, pick(self.detail, "audit", "history", "audit_entries") or [])
        self._show_settlement(
            pick(self.detail, "instructions", "settlement_instructions") or [],
            pick(self.detail, "breaks") or [],
        )
        if self.trade_id is not None:
            self.loaded.emit(self.trade_id)
        self._shown()

    def _failed(self, gen: int, failure: TaskFailure) -> None:
        if gen != self._gen:
            return
        self._task = None
        self.note.setText(f"The trade's details could not be read: {failure.message}")
        self._shown()

    def _shown(self) -> None:
        callback, self._on_shown = self._on_shown, None
        if callback is not None:
            callback()

    # --- the tabs -----------------------------------------------------------------------------------------------

    def text(self, key: str, value: Any) -> str:
        if isinstance(value, dt.datetime):
            return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, list | tuple):
            return ", ".join(self.text(key, v) for v in value)
        if isinstance(value, dict):
            return ", ".join(f"{k}={self.text(k, v)}" for k, v in value.items())
        return self.fmt.text(key, value)

    def _reference_lines(self) -> dict[str, str]:
        """The reference data the trade resolved to: instrument, account, counterparty, SSIs (one line each)."""
        d = self.detail
        out: dict[str, str] = {}
        inst = as_mapping(d.get("instrument"))
        if inst:
            cycle = f", T+{inst['settlement_cycle']}" if inst.get("settlement_cycle") is not None else ""
            out["Instrument"] = (
                f"{inst.get('name', '')} ({inst.get('asset_class', '')}, {inst.get('market', '')}{cycle})"
            )
        acct = as_mapping(d.get("account"))
        if acct:
            out["Account"] = (
                f"{acct.get('name', '')} ({acct.get('type', '')}, KYC {acct.get('kyc_status', '')})"
            )
        cpty = as_mapping(d.get("counterparty"))
        if cpty:
            out["Counterparty"] = (
                f"{cpty.get('name', '')} (LEI {cpty.get('lei', '')}, BIC {cpty.get('bic', '')})"
            )
        for key, title in (("our_ssi", "Our SSI"), ("their_ssi", "Their SSI")):
            ssi = as_mapping(d.get(key))
            if ssi:
                out[title] = (
                    f"{ssi.get('place_of_settlement_bic', '')} via {ssi.get('agent_bic', '')}, "
                    f"safekeeping {ssi.get('safekeeping_account', '')}"
                )
        return out

    def _show_trade(
        self, trade: dict[str, Any], *, partial: bool, reference: dict[str, str] | None = None
    ) -> None:
        status = str(getattr(trade.get("status"), "value", trade.get("status") or ""))
        ref = trade.get("trade_ref") or f"#{self.trade_id}"
        self.title.setText(f"<b>{ref}</b>")
        tone = STATUS_TONES.get(status, "neutral")
        version = trade.get("version")
        bits = (
            [f"<span style='color:{TONE_TEXT[tone].name()}'><b>{status_label(status)}</b></span>"]
            if status
            else []
        )
        if trade.get("fo_version"):
            bits.append(f"front-office version {trade['fo_version']}")
        if version is not None:
            bits.append(f"record version {version}")
        self.state.setText(" · ".join(bits))
        self.repair_button.setVisible(self.can_repair and status == "REPAIR")
        codes = str(trade.get("exception_codes") or "")
        if partial and codes:
            self.exceptions_label.setText("Failing validation: " + codes.replace(",", ", "))
            self.exceptions_label.show()
        elif partial:
            self.exceptions_label.hide()
        self._fill_fields(trade, reference or {})

    def _fill_fields(self, trade: dict[str, Any], reference: dict[str, str] | None = None) -> None:
        grid = self.fields_grid
        while grid.count():
            item = grid.takeAt(0)
            widget = item.widget()
            if widget is not None:
                widget.deleteLater()
        reference = reference or {}
        shown = {k: v for k, v in trade.items() if REFERENCE_IDS.get(k) not in reference}
        keys = [k for k in COLUMN_KEYS if k in shown] + sorted(k for k in shown if k not in COLUMN_KEYS)
        per_column = max(1, (len(keys) + 2) // 3)
        for i, key in enumerate(keys):
            col, row = divmod(i, per_column)
            name = QLabel(label_of(key))
            name.setObjectName("muted")
            value = QLabel(self.text(key, trade[key]))
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(name, row, col * 2)
            grid.addWidget(value, row, col * 2 + 1)
        row = per_column
        for title, line in reference.items():
            name = QLabel(title)
            name.setObjectName("muted")
            value = QLabel(line)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(name, row, 0)
            grid.addWidget(value, row, 1, 1, 5)
            row += 1
        grid.setColumnStretch(5, 1)
        grid.setRowStretch(row, 1)

    def _show_exceptions(self, exceptions: Iterable[Any]) -> None:
        lines = []
        for e in exceptions:
            d = as_mapping(e)
            if d.get("cleared_at"):
                continue
            field = d.get("field") or ""
            lines.append(f"<b>{d.get('code', '')}</b> {field}: {d.get('message', '')}")
        if lines:
            self.exceptions_label.setText("Failing validation:<br>" + "<br>".join(lines))
            self.exceptions_label.show()
        else:
            self.exceptions_label.hide()

    def _show_versions(self, versions: list[Any]) -> None:
        """One column per front-office version; a cell a version changed is highlighted."""
        vs = [as_mapping(v) for v in versions]
        # The line as the file had it (by column header) when the service could rebuild it, else what was stored.
        payloads = [
            {
                k: val
                for k, val in as_mapping(pick(v, "fields", "payload") or {}).items()
                if k not in VERSION_META
            }
            for v in vs
        ]
        keys: list[str] = []
        for p in payloads:
            keys += [k for k in p if k not in keys]
        headers = ["Field"] + [
            f"v{v.get('fo_version', i + 1)} {str(getattr(v.get('action'), 'value', v.get('action') or ''))}".strip()
            for i, v in enumerate(vs)
        ]
        table = self.versions
        table.clear()
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        meta = [("received", "received_at"), ("source", "source"), ("source ref", "source_ref")]
        rows: list[tuple[str, list[str], list[bool]]] = []
        for title, name in meta:
            rows.append((title, [self.text(name, v.get(name)) for v in vs], [False] * len(vs)))
        changed_keys: set[str] = set()
        field_rows: list[tuple[str, list[str], list[bool]]] = []
        for key in keys:
            cells, changed = [], []
            for i, p in enumerate(payloads):
                value = p.get(key)
                cells.append(self.text(key, _as_number(key, value)))
                differs = i > 0 and _norm(payloads[i - 1].get(key)) != _norm(value)
                changed.append(differs)
                if differs:
                    changed_keys.add(key)
            field_rows.append((label_of(key), cells, changed))
        # What the front office amended first: the reason a clerk opens this tab.
        field_rows.sort(key=lambda r: not any(r[2]))
        rows += field_rows
        table.setRowCount(len(rows))
        for r, (title, cells, changed) in enumerate(rows):
            name = QTableWidgetItem(title)
            if r < len(meta):
                name.setForeground(QBrush(QColor("#7b8794")))
            table.setItem(r, 0, name)
            for c, (text, differs) in enumerate(zip(cells, changed, strict=True), start=1):
                item = QTableWidgetItem(text)
                if differs:
                    item.setBackground(QBrush(CHANGED_BACKGROUND))
                    item.setToolTip(f"Changed in this version (was {rows[r][1][c - 2]})")
                table.setItem(r, c, item)
        table.resizeColumnsToContents()
        for c in range(1, table.columnCount()):
            table.setColumnWidth(c, max(table.columnWidth(c) + 16, 150))
        self.changed_fields = changed_keys
        self.tabs.setTabText(1, f"Versions ({len(vs)})" if vs else "Versions")

    def _show_history(self, trade: dict[str, Any], entries: list[Any]) -> None:
        steps = [f"{label_of(k)} {self.text(k, trade[k])}" for k in LIFECYCLE if trade.get(k)]
        self.lifecycle.setText("Lifecycle: " + " → ".join(steps) if steps else "")
        rows = []
        for e in entries:
            d = as_mapping(e)
            changes = _changes(d.get("before"), d.get("after"))
            when = pick(d, "occurred_at", "at", "when")
            rows.append(
                [
                    self.text("occurred_at", when),
                    str(pick(d, "username", "user", "who") or ""),
                    str(d.get("action") or ""),
                    changes,
                ]
            )
        self.audit.fill(
            rows or [["", "", "No audit entries about this trade: nobody has changed it here.", ""]]
        )
        self.tabs.setTabText(2, f"History ({len(rows)})" if rows else "History")

    def _show_settlement(self, instructions: list[Any], breaks: list[Any]) -> None:
        rows = []
        for i in instructions:
            d = as_mapping(i)
            rows.append(
                [
                    str(pick(d, "ref", "instruction_ref", "id") or ""),
                    self.text("type", pick(d, "type", "instruction_type", "kind")),
                    self.text("status", d.get("status")) if d.get("status") else "",
                    " ".join(str(x) for x in (d.get("reason_code"), d.get("reason_text")) if x),
                    self.text("settlement_date", pick(d, "settlement_date", "intended_settlement_date")),
                    self.text("quantity", d.get("quantity")),
                    " ".join(
                        x
                        for x in (
                            self.text("amount", pick(d, "amount", "settlement_amount")),
                            d.get("currency"),
                        )
                        if x
                    ),
                ]
            )
        tints = [QColor("#fdecec") if "FAILED" in r[2].upper() else None for r in rows]
        self.instructions.fill(rows, tints)
        brows = []
        for b in breaks:
            d = as_mapping(b)
            brows.append(
                [
                    str(pick(d, "ref", "id") or ""),
                    self.text("type", pick(d, "type", "break_type")),
                    self.text("status", d.get("status")) if d.get("status") else "",
                    str(pick(d, "category", "root_cause") or ""),
                    " ".join(x for x in (self.text("amount", d.get("amount")), d.get("currency")) if x),
                    self.fmt.text("owner_id", d.get("owner_id")) if d.get("owner_id") else "unassigned",
                    self.text("opened_at", pick(d, "opened_at", "created_at")),
                ]
            )
        self.breaks.fill(brows)
        n = len(rows) + len(brows)
        self.tabs.setTabText(3, f"Settlement ({n})" if n else "Settlement")


NUMERIC_FIELDS = frozenset({"quantity", "price", "gross_amount", "net_amount", "commission", "fees"})


def _as_number(key: str, value: Any) -> Any:
    """A payload's number as text ("85.00000000") read as a Decimal, so it shows like the blotter (85.00)."""
    if key in NUMERIC_FIELDS and isinstance(value, str):
        try:
            return Decimal(value.replace(",", ""))
        except Exception:
            return value
    return value


def _norm(value: Any) -> Any:
    """Compare versions by meaning: 100 and 100.00 are the same quantity, "100" from a file too."""
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return Decimal(str(value)).normalize()
    if isinstance(value, str):
        try:
            return Decimal(value).normalize()
        except Exception:
            return value.strip()
    return value


def _changes(before: Any, after: Any) -> str:
    b, a = (
        as_mapping(before) if isinstance(before, dict) else {},
        as_mapping(after) if isinstance(after, dict) else {},
    )
    parts = []
    for key in list(dict.fromkeys([*b, *a])):
        if key in b and key in a and b[key] != a[key]:
            parts.append(f"{key}: {b[key]} → {a[key]}")
        elif key in a and key not in b:
            parts.append(f"{key}: {a[key]}")
    return "; ".join(parts)
