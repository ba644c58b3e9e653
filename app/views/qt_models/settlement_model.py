"""The settlement queue's table model: the paged model (``paged_model.py``) over ``services.settlement.queue``.

What is particular to instructions is how a row looks: the status in its colour with a dot, a failed instruction
tinted red and one still open after its settlement date tinted amber; the reason code, the age in business days and
the penalty accrued in red when they mean trouble; settled and cancelled ones muted. A reason code's tooltip says it
in words (``reasons.describe``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QColor

from app.services.settlement import queue
from app.services.settlement.queue import COLUMNS, SORTABLE, QueueFilter, Sort
from app.views.qt_models.blotter_model import TONE_TEXT, CellFormat
from app.views.qt_models.paged_model import PAGE_SIZE, PagedTableModel, RowLook
from app.views.qt_models.status_counts import status_label, tone_dot
from app.views.settlement.reason_words import describe

if TYPE_CHECKING:
    from app.services.db import Database
    from app.services.permissions import Actor
    from app.views.tasks import TaskRunner

STATUS_TONES: dict[str, str] = {
    "PENDING": "neutral",
    "INSTRUCTED": "info",
    "MATCHED": "info",
    "PARTIALLY_SETTLED": "warn",
    "SETTLED": "ok",
    "FAILED": "bad",
    "CANCELLED": "neutral",
}
STATUS_ICONS = {"FAILED": "exception"}
FAILED_BACKGROUND = QColor("#fdecec")
LATE_BACKGROUND = QColor("#fff6e5")
MUTED = QColor("#7b8794")
CLOSED = frozenset({"SETTLED", "CANCELLED"})

C = queue.COL


class QueueFormat(CellFormat):
    """The blotter's cell texts, with the queue's decimals, and booleans and ages as a clerk reads them."""

    PLACES = {
        "quantity": 0,
        "settled_quantity": 0,
        "settlement_amount": 2,
        "settled_amount": 2,
        "value_at_stake": 2,
        "penalty": 2,
    }

    def text(self, key: str, value: Any) -> str:
        if key == "is_netted":
            return "netted" if value else ""
        if key == "age_days":
            return f"{value}d" if value else ""
        return super().text(key, value)


class SettlementModel(PagedTableModel):
    service = queue
    columns = COLUMNS
    sortable = SORTABLE
    id_key = "id"
    placeholder_key = "instruction_ref"
    what = "settlement queue"

    def __init__(
        self,
        db: Database,
        actor: Actor,
        tasks: TaskRunner,
        parent: QObject | None = None,
        *,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(db, actor, tasks, QueueFilter(), Sort(), parent, page_size=page_size)
        self.fmt = QueueFormat(actor.timezone)

    def set_usernames(self, names: dict[int, str]) -> None:
        self.fmt.usernames = dict(names)
        self.forget_looks()

    def instruction_id(self, row: int) -> int | None:
        return self.item_id(row)

    def build(self, row: tuple[Any, ...]) -> RowLook:
        status = str(row[C["status"]])
        tone = STATUS_TONES.get(status, "neutral")
        late = bool(row[C["age_days"]]) and status not in CLOSED
        bad = TONE_TEXT["bad"]
        foregrounds = {C["status"]: TONE_TEXT[tone]}
        bold = {C["status"]}
        if row[C["reason_code"]]:
            foregrounds[C["reason_code"]] = (
                bad if status in ("FAILED", "PARTIALLY_SETTLED") else TONE_TEXT["warn"]
            )
            bold.add(C["reason_code"])
        if late:
            foregrounds[C["age_days"]] = bad
        if row[C["penalty"]]:
            foregrounds[C["penalty"]] = bad
            bold.add(C["penalty"])
        background = FAILED_BACKGROUND if status == "FAILED" else LATE_BACKGROUND if late else None
        text = self.fmt.text
        return RowLook(
            texts=tuple(text(k, v) for k, v in zip(self.keys, row, strict=True)),
            status=status,
            background=background,
            foregrounds=foregrounds,
            default=MUTED if status in CLOSED else None,
            bold_columns=frozenset(bold),
            icons={C["status"]: tone_dot(tone)},
        )

    def tooltip(self, row: tuple[Any, ...], key: str, look: RowLook) -> str | None:
        if key in ("reason_code", "status") and row[C["reason_code"]]:
            words = describe(str(row[C["reason_code"]]))
            extra = row[C["reason_text"]]
            lines = [f"{status_label(look.status)}: {words}"]
            if extra and extra != words:
                lines.append(str(extra))
            return "\n".join(lines)
        if key == "age_days" and row[C["age_days"]]:
            return f"{row[C['age_days']]} business days past the intended settlement date"
        if key == "owner_id" and row[C["owner_id"]] is None:
            return "Unclaimed"
        if key == "value_at_stake":
            return "What is still to settle: the unsettled amount (free of payment: the unsettled quantity's value)"
        return None
