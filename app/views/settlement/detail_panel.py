"""The detail of one instruction under the queue: tabs for the instruction, the messages applied to it (reason codes
in words), its trades, its securities and cash movements, its penalties, and its history with the comments.

Read in one background task (:func:`app.services.settlement.queue.detail`); a newer request drops an older answer.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.services.settlement import queue
from app.services.settlement.queue import InstructionDetail
from app.views.panes.base import Workspace
from app.views.qt_models.settlement_model import STATUS_TONES, QueueFormat
from app.views.qt_models.status_counts import TONE_COLOURS, status_label
from app.views.settlement.reason_words import describe
from app.views.tasks import TaskFailure

FIELDS: tuple[tuple[str, str], ...] = (
    ("instruction_ref", "Instruction"),
    ("status", "Status"),
    ("reason", "Reason"),
    ("instruction_type", "Type"),
    ("instrument", "Instrument"),
    ("counterparty", "Counterparty"),
    ("account", "Account"),
    ("market", "Market"),
    ("quantity", "Quantity"),
    ("settled_quantity", "Settled quantity"),
    ("settlement_amount", "Settlement amount"),
    ("settled_amount", "Settled amount"),
    ("value_at_stake", "Value at stake"),
    ("penalty", "Penalties accrued"),
    ("trade_date", "Trade date"),
    ("intended_settlement_date", "Intended settlement"),
    ("actual_settlement_date", "Actual settlement"),
    ("age_days", "Age (business days)"),
    ("our_ssi", "Our SSI"),
    ("their_ssi", "Their SSI"),
    ("counterparty_ref", "Their reference"),
    ("instructed_at", "Instructed at"),
    ("owner", "Owner"),
    ("version", "Version"),
)


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.verticalHeader().hide()
    t.setAlternatingRowColors(True)
    t.setWordWrap(False)
    t.horizontalHeader().setStretchLastSection(True)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    return t


class InstructionDetailPanel(QWidget):
    #: The panel shows an instruction (its id).
    shown = Signal(int)

    def __init__(self, workspace: Workspace, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("instructionDetail")
        self.ws = workspace
        self.fmt = QueueFormat(workspace.actor.timezone)
        self.current: InstructionDetail | None = None
        self._wanted: int | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(4)
        self.title = QLabel("Select an instruction and press Enter")
        self.title.setObjectName("detailTitle")
        layout.addWidget(self.title)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        layout.addWidget(self.tabs, 1)

        self.fields_widget = QWidget()
        self.fields_widget.setObjectName("detailFields")
        grid = QGridLayout(self.fields_widget)
        grid.setContentsMargins(8, 8, 8, 8)
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(3)
        self.values: dict[str, QLabel] = {}
        half = (len(FIELDS) + 1) // 2
        for i, (key, label) in enumerate(FIELDS):
            col, row = (0, i) if i < half else (2, i - half)
            name = QLabel(label)
            name.setObjectName("muted")
            value = QLabel("")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setWordWrap(True)  # a long reason must wrap, never widen the pane
            grid.addWidget(name, row, col)
            grid.addWidget(value, row, col + 1)
            self.values[key] = value
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        self.messages = _table(["Received", "Dir.", "Type", "Status", "Reference", "Reasons", "Why", "File"])
        self.trades = _table(
            ["Trade", "Status", "Side", "Quantity", "Price", "Net", "Ccy", "Trade date", "Settles"]
        )
        self.movements = _table(["Kind", "What", "Quantity / amount", "Value date", "Account", "Booked"])
        self.penalties = _table(["Day", "Reference value", "Rate (bp)", "Penalty", "Ccy"])
        self.history = _table(["When", "Who", "What", "Details"])
        # Scrolled, as the blotter's: a short panel keeps each field's natural height (a wrapped reason showed
        # half its second line) and scrolls instead.
        fields_scroll = QScrollArea()
        fields_scroll.setWidgetResizable(True)
        fields_scroll.setFrameShape(QFrame.Shape.NoFrame)
        fields_scroll.setWidget(self.fields_widget)
        for widget, name in (
            (fields_scroll, "Instruction"),
            (self.messages, "Messages"),
            (self.trades, "Trades"),
            (self.movements, "Movements"),
            (self.penalties, "Penalties"),
            (self.history, "History"),
        ):
            self.tabs.addTab(widget, name)

    # --- loading --------------------------------------------------------------------------------------------------

    def load(self, instruction_id: int) -> None:
        self._wanted = instruction_id
        self._call(
            queue.detail,
            self.ws.db,
            self.ws.actor,
            instruction_id,
            on_done=lambda d: self._loaded(instruction_id, d),
            on_error=lambda f: self._failed(instruction_id, f),
            label="Reading the instruction",
            quiet=True,
            owner=self,
        )

    def _call(self, *args: object, **options: object) -> None:
        with contextlib.suppress(RuntimeError):  # the task runner has shut down: the window is closing
            self.ws.tasks.call(*args, **options)  # type: ignore[arg-type]

    def reload(self) -> None:
        if self._wanted is not None:
            self.load(self._wanted)

    def show_nothing(self) -> None:
        self._wanted = None
        self.current = None
        self.title.setText("Select an instruction and press Enter")
        for v in self.values.values():
            v.setText("")
        for t in (self.messages, self.trades, self.movements, self.penalties, self.history):
            t.setRowCount(0)

    def _failed(self, instruction_id: int, failure: TaskFailure) -> None:
        if instruction_id == self._wanted:
            self.title.setText(f"Could not read the instruction: {failure.message}")

    def _loaded(self, instruction_id: int, d: object) -> None:
        if instruction_id != self._wanted:
            return
        assert isinstance(d, InstructionDetail)
        self.current = d
        self.present(d)
        self.shown.emit(instruction_id)

    # --- showing --------------------------------------------------------------------------------------------------

    def _t(self, key: str, value: Any) -> str:
        return self.fmt.text(key, value)

    def present(self, d: InstructionDetail) -> None:
        i = d.instruction
        status = str(i["status"])
        reason = ""
        if i.get("reason_code"):
            words = describe(i["reason_code"])
            reason = words if words.startswith(str(i["reason_code"])) else f"{i['reason_code']}: {words}"
            if i.get("reason_text") and i["reason_text"] not in reason:
                reason += f" ({i['reason_text']})"
        owner = i.get("owner") or "unclaimed"
        self.title.setText(
            f"{i['instruction_ref']} · {status_label(status)} · {i['isin']} · {i['counterparty_code']} · {owner}"
        )
        values = {
            "instruction_ref": i["instruction_ref"] + (" (netted)" if i.get("is_netted") else ""),
            "status": status_label(status),
            "reason": reason,
            "instruction_type": i["instruction_type"],
            "instrument": f"{i['isin']} {i['instrument_name']}",
            "counterparty": f"{i['counterparty_code']} {i['counterparty_name']} ({i['counterparty_bic']})",
            "account": f"{i['account_code']} {i['account_name']}",
            "market": f"{i['market_mic']} {i['market_name']}",
            "quantity": self._t("quantity", i["quantity"]),
            "settled_quantity": self._t("quantity", i["settled_quantity"]),
            "settlement_amount": f"{self._t('settlement_amount', i['settlement_amount'])} {i['currency']}",
            "settled_amount": f"{self._t('settled_amount', i['settled_amount'])} {i['currency']}",
            "value_at_stake": f"{self._t('value_at_stake', i['value_at_stake'])} {i['currency']}",
            "penalty": self._t("penalty", d.penalty_total) if d.penalties else "none",
            "trade_date": self._t("trade_date", i["trade_date"]),
            "intended_settlement_date": self._t("d", i["intended_settlement_date"]),
            "actual_settlement_date": self._t("d", i["actual_settlement_date"]) or "not yet",
            "age_days": str(i["age_days"]),
            "our_ssi": i["our_ssi"],
            "their_ssi": i["their_ssi"],
            "counterparty_ref": i.get("counterparty_ref") or "",
            "instructed_at": self._t("t", i["instructed_at"]),
            "owner": owner + (f" since {self._t('t', i['claimed_at'])}" if i.get("claimed_at") else ""),
            "version": f"{i['version']} (last change by {i.get('updated_by') or 'the system'})",
        }
        for key, label in self.values.items():
            label.setText(values.get(key, ""))
        tone = STATUS_TONES.get(status, "neutral")
        self.values["status"].setStyleSheet(f"color: {TONE_COLOURS[tone].name()}; font-weight: 600;")
        bad = TONE_COLOURS["bad"].name()
        self.values["reason"].setStyleSheet(f"color: {bad};" if reason else "")
        self.values["penalty"].setStyleSheet(f"color: {bad}; font-weight: 600;" if d.penalties else "")

        self._fill(
            self.messages,
            [
                [
                    self._t("t", m["received_at"]),
                    "in" if m["direction"] == "INBOUND" else "out",
                    m["message_type"],
                    status_label(m["status"]),
                    m["reference"] or "",
                    "; ".join(describe(c) for c in m["reason_codes"]),
                    m["status_reason"] or "",
                    m["file_name"] or "",
                ]
                for m in d.messages
            ],
        )
        self._fill(
            self.trades,
            [
                [
                    t["trade_ref"],
                    status_label(t["status"]),
                    t["side"],
                    self._t("quantity", t["quantity"]),
                    self._t("price", t["price"]),
                    self._t("net", t["net_amount"]),
                    t["currency"],
                    self._t("d", t["trade_date"]),
                    self._t("d", t["settlement_date"]),
                ]
                for t in d.trades
            ],
        )
        moves = [
            [
                m["kind"].title(),
                "securities",
                self._t("quantity", m["quantity"]),
                self._t("d", m["value_date"]),
                m["account_code"],
                self._t("t", m["created_at"]),
            ]
            for m in d.securities_movements
        ] + [
            [
                m["kind"].title(),
                f"cash {m['currency']}",
                self._t("amount", m["amount"]),
                self._t("d", m["value_date"]),
                m["account_code"],
                self._t("t", m["created_at"]),
            ]
            for m in d.cash_movements
        ]
        self._fill(self.movements, moves)
        self._fill(
            self.penalties,
            [
                [
                    self._t("d", p["penalty_date"]),
                    self._t("amount", p["reference_value"]),
                    f"{Decimal(p['rate_bp']).normalize():f}",
                    self._t("penalty", p["amount"]),
                    p["currency"],
                ]
                for p in d.penalties
            ],
        )
        events = [
            (h["occurred_at"], h["username"], h["action"], _describe_change(h["before"], h["after"]))
            for h in d.history
        ] + [(c["created_at"], c["author"], "comment", c["body"]) for c in d.comments]
        events.sort(key=lambda e: e[0])
        self._fill(self.history, [[self._t("t", w), who, what, text] for w, who, what, text in events])
        counts = {
            1: len(d.messages),
            2: len(d.trades),
            3: len(moves),
            4: len(d.penalties),
            5: len(events),
        }
        names = {1: "Messages", 2: "Trades", 3: "Movements", 4: "Penalties", 5: "History"}
        for index, n in counts.items():
            self.tabs.setTabText(index, f"{names[index]} ({n})")

    def _fill(self, table: QTableWidget, rows: list[list[str]]) -> None:
        table.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                table.setItem(r, c, item)
        table.resizeColumnsToContents()

    def tab_rows(self, name: str) -> list[list[str]]:
        """The texts of a tab's table (tests, copy)."""
        table = {
            "messages": self.messages,
            "trades": self.trades,
            "movements": self.movements,
            "penalties": self.penalties,
            "history": self.history,
        }[name]
        return [
            [table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())]
            for r in range(table.rowCount())
        ]


def _describe_change(before: Any, after: Any) -> str:
    """An audit entry in one line: ``status INSTRUCTED → CANCELLED; note cancelled: …``."""
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    parts = []
    for key, value in after.items():
        if key in ("version", "trades") or value in (None, "", []):
            continue
        old = before.get(key)
        if old is not None and old != value:
            parts.append(f"{key} {old} → {value}")
        elif old is None:
            parts.append(f"{key} {value}")
    return "; ".join(parts)
