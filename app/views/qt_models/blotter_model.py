"""The trade blotter's table model: the paged model (``paged_model.py``) over ``services.blotter``.

The machinery (a row count and a small cache of pages, never the million trades themselves; pages read by keyset
in the background; generations; the live refresh window) is :class:`~app.views.qt_models.paged_model.PagedTableModel`'s,
shared with the settlement queue. What is particular to trades is here: how a value reads (:class:`CellFormat`, also
used by the detail panel, the clipboard and the settlement queue), the status palette, and how a row looks: the
status in its colour with a dot (a spanner for a repair), a trade in repair tinted red and a failed one amber, the
exception codes in red with their reasons as a tooltip, cancelled trades muted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from PySide6.QtCore import QObject
from PySide6.QtGui import QColor, QIcon

from app.services import blotter
from app.services.blotter import COLUMN_KEYS, COLUMNS, SORTABLE, BlotterFilter, Sort
from app.views import resources
from app.views.qt_models.paged_model import (
    DISPATCH_DELAY_MS,
    LOADING_FOREGROUND,
    LOADING_TEXT,
    MAX_CACHED_PAGES,
    MAX_IN_FLIGHT,
    PAGE_SIZE,
    ROLE_LOADED,
    ROLE_RAW,
    ROLE_STATUS,
    IdRole,
    LoadedRole,
    PagedTableModel,
    RawRole,
    StatusRole,
    alignments,
)
from app.views.qt_models.status_counts import status_label, tone_dot

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor
    from app.views.tasks import TaskRunner

#: The custom roles of the paged model, under the blotter's names (the row's trade id: ``TradeIdRole``).
TradeIdRole = IdRole
ROLE_TRADE_ID = int(TradeIdRole)

# The status palette of the panes (see trade_blotter.py and resources/style.qss).
STATUS_TONES: dict[str, str] = {
    "REPAIR": "bad",
    "VALIDATED": "info",
    "CONFIRMED": "info",
    "AFFIRMED": "info",
    "INSTRUCTED": "info",
    "SETTLED": "ok",
    "PARTIALLY_SETTLED": "warn",
    "FAILED": "bad",
    "CANCELLED": "neutral",
}
TONE_TEXT = {
    "ok": QColor("#2e7d32"),
    "warn": QColor("#b26a00"),
    "bad": QColor("#c62828"),
    "info": QColor("#1f4f8f"),
    "neutral": QColor("#7b8794"),
}
# Row tints: a trade in repair is the clerk's work, it must stand out; a failed one is nearly as loud.
REPAIR_BACKGROUND = QColor("#fdecec")
FAILED_BACKGROUND = QColor("#fff6e5")
MUTED_FOREGROUND = QColor("#7b8794")

COL = {key: i for i, key in enumerate(COLUMN_KEYS)}
_STATUS = COL["status"]
_EXCEPTIONS = COL["exception_codes"]
_OWNER = COL["owner_id"]

#: Text alignment per column: numbers right, words left (computed once, not per call).
ALIGN = alignments(COLUMNS)


@dataclass(slots=True)
class RowLook:
    """How a loaded row reads and looks, worked out once per row and kept while its page is cached."""

    texts: tuple[str, ...]
    status: str
    background: QColor | None
    muted: bool
    has_exceptions: bool

    def foreground(self, col: int) -> QColor | None:
        if col == _STATUS:
            return TONE_TEXT[STATUS_TONES.get(self.status, "neutral")]
        if col == _EXCEPTIONS and self.has_exceptions:
            return TONE_TEXT["bad"]
        return MUTED_FOREGROUND if self.muted else None

    def bold(self, col: int) -> bool:
        return col == _STATUS or (col == _EXCEPTIONS and self.has_exceptions)


def _plain(value: Any) -> Any:
    """Enums as their stored code (StrEnum compares equal to it; str() gives the code too)."""
    return getattr(value, "value", value)


def format_decimal(value: Decimal, kind: str, places: int) -> str:
    """Thousands separators; at least ``places`` decimals, more only when the value has them (a price 0.98765)."""
    exponent = value.normalize().as_tuple().exponent
    shown = max(places, -exponent if isinstance(exponent, int) and exponent < 0 else 0)
    return f"{value:,.{shown}f}"


class CellFormat:
    """How a value reads in the blotter (and in the clipboard): the same text for the view, copy and tests."""

    PLACES = {
        "quantity": 0,
        "price": 2,
        "gross_amount": 2,
        "net_amount": 2,
        "commission": 2,
        "fees": 2,
    }

    def __init__(self, timezone: str = "UTC", usernames: dict[int, str] | None = None) -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except Exception:  # an unknown zone in a user record must not break the blotter
            self.zone = ZoneInfo("UTC")
        self.usernames = usernames or {}

    def text(self, key: str, value: Any) -> str:
        if value is None:
            return ""
        if key in ("owner_id", "updated_by_id"):
            return self.usernames.get(int(value), f"#{value}")
        if key == "status":
            return status_label(str(_plain(value)))
        if key == "exception_codes":
            return str(value).replace(",", ", ")
        if isinstance(value, Decimal):
            return format_decimal(value, key, self.PLACES.get(key, 2))
        if isinstance(value, dt.datetime):
            return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, dt.date):
            return value.isoformat()
        return str(_plain(value))


class BlotterModel(PagedTableModel):
    """Rows of the blotter for one filter and sort; all of :data:`~app.services.blotter.COLUMNS` as columns."""

    service = blotter
    columns = COLUMNS
    sortable = SORTABLE
    id_key = "id"
    placeholder_key = "trade_ref"
    what = "trade blotter"
    items = "trades"

    def __init__(
        self,
        db: Database,
        actor: Actor,
        tasks: TaskRunner,
        parent: QObject | None = None,
        *,
        page_size: int = PAGE_SIZE,
        max_pages: int = MAX_CACHED_PAGES,
    ) -> None:
        super().__init__(
            db, actor, tasks, BlotterFilter(), Sort(), parent, page_size=page_size, max_pages=max_pages
        )
        self.fmt = CellFormat(actor.timezone)
        #: Exception code -> what it means (the pane sets it once the capture service has said).
        self.reasons: dict[str, str] = {}
        self._repair_icon = resources.icon("repair")
        self._exception_icon = resources.icon("exception")

    def trade_id(self, row: int) -> int | None:
        return self.item_id(row)

    def row_of_trade(self, trade_id: int) -> int | None:
        """The row of a trade among the cached pages (None when it is not cached)."""
        return self.row_of_item(trade_id)

    def set_usernames(self, names: dict[int, str]) -> None:
        self.fmt.usernames = dict(names)
        self.forget_looks(_OWNER)

    def build(self, row: tuple[Any, ...]) -> RowLook:
        status = str(_plain(row[_STATUS]))
        text = self.fmt.text
        return RowLook(
            texts=tuple(text(key, value) for key, value in zip(COLUMN_KEYS, row, strict=True)),
            status=status,
            background=REPAIR_BACKGROUND
            if status == "REPAIR"
            else FAILED_BACKGROUND
            if status == "FAILED"
            else None,
            muted=status == "CANCELLED",
            has_exceptions=bool(row[_EXCEPTIONS]),
        )

    def icon(self, look: RowLook, col: int) -> QIcon | None:
        if col == _STATUS:
            return self._status_icon(look.status)
        if col == _EXCEPTIONS and look.has_exceptions:
            return self._exception_icon
        return None

    def _status_icon(self, status: str) -> QIcon:
        if status == "REPAIR":
            return self._repair_icon
        return tone_dot(STATUS_TONES.get(status, "neutral"))

    def tooltip(self, row: tuple[Any, ...], key: str, look: RowLook) -> str | None:
        if key == "status" and look.status == "REPAIR":
            codes = self.fmt.text("exception_codes", row[_EXCEPTIONS])
            return f"In repair: failed validation ({codes}). Select it and press Enter for the details."
        if key == "exception_codes" and row[_EXCEPTIONS]:
            return self._explain_codes(str(row[_EXCEPTIONS]))
        if key == "owner_id" and row[_OWNER] is None:
            return "Unassigned"
        return None

    def _explain_codes(self, codes: str) -> str:
        return "\n".join(f"{c}: {self.reasons.get(c, 'validation failed')}" for c in codes.split(",") if c)


__all__ = [
    "ALIGN",
    "COL",
    "DISPATCH_DELAY_MS",
    "LOADING_FOREGROUND",
    "LOADING_TEXT",
    "MAX_CACHED_PAGES",
    "MAX_IN_FLIGHT",
    "PAGE_SIZE",
    "ROLE_LOADED",
    "ROLE_RAW",
    "ROLE_STATUS",
    "ROLE_TRADE_ID",
    "STATUS_TONES",
    "TONE_TEXT",
    "BlotterModel",
    "CellFormat",
    "LoadedRole",
    "RawRole",
    "RowLook",
    "StatusRole",
    "TradeIdRole",
    "format_decimal",
]
