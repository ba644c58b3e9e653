"""The break work list's filter bar: recon, type, status, category, root cause, age bucket, owner, amount range, and
the quick filters a clerk lives in.

Every widget maps to one field of :class:`~app.services.workflow.worklist.BreakFilter`; the database filters.
Typing is debounced; choices from lists apply at once. Quick filters:

- **My breaks**: owned by me;
- **Unassigned**: owned by nobody (the pool to claim from);
- **Older than N days**: age above N business days (N from the spin box beside it).

By default the list shows the breaks still being worked (open, assigned, proposed).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QLineEdit,
    QMenu,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.models.enums import BreakStatus, BreakType
from app.services.workflow.worklist import AGE_BUCKET_LABELS, AGE_BUCKETS, OPEN_STATUSES, BreakFilter, Choices
from app.views import resources
from app.views.common.filter_widgets import DebouncedFilterBar
from app.views.common.filter_widgets import caption as _caption
from app.views.common.filter_widgets import combo as _combo
from app.views.common.filter_widgets import line_edit as _line
from app.views.common.filter_widgets import quick_toggle as _quick
from app.views.common.flow_layout import FlowLayout, group
from app.views.qt_models.breaks_model import BREAK_STATUS_TONES, TYPE_LABELS
from app.views.qt_models.status_counts import status_label, tone_dot

DEFAULT_OLDER_THAN = 5
DEFAULT_FILTER = BreakFilter(statuses=tuple(str(s) for s in OPEN_STATUSES))
ANYONE, ME, NOBODY = "any", "me", "nobody"


def _decimal(text: str) -> Decimal | None:
    t = text.strip().replace(",", "")
    if not t:
        return None
    try:
        return abs(Decimal(t))
    except InvalidOperation:
        return None


class BreakFilterBar(DebouncedFilterBar):
    """Emits :attr:`changed` with the new filter whenever the user changes one (debounced while typing)."""

    def __init__(self, user_id: int | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._user_id = user_id

        self.text = _line(
            "Internal or external ref…", 170, "Part of the internal or external reference (Ctrl+F)"
        )
        self.text.addAction(resources.icon("filter"), QLineEdit.ActionPosition.LeadingPosition)
        self.recon = _combo([("Any recon", None)], "Reconciliation (recon definition)")
        self.recon.setMinimumWidth(150)
        self.break_type = _combo(
            [("Any type", None)] + [(TYPE_LABELS.get(t.value, t.value), t.value) for t in BreakType],
            "Kind of break",
        )
        self.status_button = QToolButton()
        self.status_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.status_button.setMinimumWidth(120)
        self.status_button.setToolTip("Show only breaks in these statuses")
        self.status_button.setAccessibleName("Status filter")
        self.status_menu = QMenu(self.status_button)
        self.status_actions = {}
        for status in BreakStatus:
            action = self.status_menu.addAction(
                tone_dot(BREAK_STATUS_TONES.get(status.value, "neutral")), status_label(status.value)
            )
            action.setCheckable(True)
            action.setData(status.value)
            action.toggled.connect(self._statuses_edited)
            self.status_actions[status.value] = action
        self.status_menu.addSeparator()
        self.status_menu.addAction("Still being worked", lambda: self._set_statuses(OPEN_STATUSES))
        self.status_menu.addAction("Any status", lambda: self._set_statuses(()))
        self.status_button.setMenu(self.status_menu)
        self.category = _combo([("Any category", None)], "Category the break is filed under")
        self.root_cause = _combo([("Any cause", None)], "Root-cause code (DQUA, DMON, DDAT …)")
        self.age = _combo(
            [("Any age", None)] + [(AGE_BUCKET_LABELS[k], k) for k in AGE_BUCKETS],
            "Age in business days since the break was opened",
        )
        self.owner = _combo([("Anyone", ANYONE), ("Me", ME), ("Nobody", NOBODY)], "Who owns the break")
        self.amount_min = _line("Amount from", 90, "Smallest amount at stake (absolute)")
        self.amount_max = _line("to", 80, "Largest amount at stake (absolute)")
        self.currency = _line("Ccy", 50, "Currency (ISO code)")
        self.currency.setMaxLength(3)

        self.mine = _quick("My breaks", "Breaks I own", "user")
        self.unassigned = _quick("Unassigned", "Breaks nobody has claimed yet")
        self.older = _quick(
            "Older than", "Breaks older than the number of business days beside it", "exception"
        )
        self.older_days = QSpinBox()
        self.older_days.setRange(0, 365)
        self.older_days.setValue(DEFAULT_OLDER_THAN)
        self.older_days.setSuffix(" days")
        self.older_days.setToolTip("Business days for 'Older than'")
        self.older_days.setAccessibleName("Older than, business days")
        self.clear_button = QToolButton()
        self.clear_button.setText("Clear")
        self.clear_button.setToolTip("Back to every break still being worked")
        self.clear_button.clicked.connect(self.clear)
        if user_id is None:
            self.mine.setEnabled(False)

        # Two rows that wrap where the pane is narrow: the bar needs the width of its widest field, not of a row.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(6)
        row1 = FlowLayout()
        outer.addLayout(row1)
        row1.addWidget(self.text, 2)
        row1.addWidget(self.recon, 1)
        row1.addWidget(self.break_type)
        row1.addWidget(self.status_button)
        row1.addWidget(self.category)
        row1.addWidget(self.root_cause)
        row1.addWidget(self.age)
        row2 = FlowLayout()
        outer.addLayout(row2)
        row2.addWidget(self.owner)
        row2.addWidget(group(self.amount_min, _caption("–"), self.amount_max, self.currency))
        row2.addWidget(group(self.mine, self.unassigned, self.older, self.older_days, spacing=6))
        row2.addStretch(1)
        row2.addWidget(self.clear_button)

        for edit in (self.text, self.amount_min, self.amount_max, self.currency):
            edit.textEdited.connect(lambda _t: self._typed())
            edit.returnPressed.connect(self._emit_now)
            edit.textChanged.connect(lambda text: self._emit_now() if not text else None)
        for combo in (self.recon, self.break_type, self.category, self.root_cause, self.age):
            combo.currentIndexChanged.connect(lambda _i: self._emit_now())
        self.owner.currentIndexChanged.connect(self._owner_changed)
        self.mine.toggled.connect(lambda on: self._quick_owner(ME if on else ANYONE))
        self.unassigned.toggled.connect(lambda on: self._quick_owner(NOBODY if on else ANYONE))
        self.older.toggled.connect(lambda _on: self._emit_now())
        self.older_days.valueChanged.connect(lambda _v: self._emit_now() if self.older.isChecked() else None)
        self.set_filter(DEFAULT_FILTER, emit=False)

    # --- choices ------------------------------------------------------------------------------------------------

    def set_choices(self, choices: Choices) -> None:
        """Offer the recon definitions, categories and root causes (read in the background)."""
        self._quiet = True
        try:
            _refill(self.recon, [(name, i) for i, name in choices.recons])
            _refill(self.category, [(c, c) for c in choices.categories])
            _refill(self.root_cause, [(c, c) for c in choices.root_causes])
        finally:
            self._quiet = False

    # --- reading and writing the filter ---------------------------------------------------------------------------

    def current(self) -> BreakFilter:
        statuses = tuple(s for s, a in self.status_actions.items() if a.isChecked())
        owner = self.owner.currentData()
        recon = self.recon.currentData()
        btype = self.break_type.currentData()
        return BreakFilter(
            definition_ids=(int(recon),) if recon is not None else (),
            break_types=(str(btype),) if btype else (),
            statuses=statuses,
            category=self.category.currentData(),
            root_cause=self.root_cause.currentData(),
            age_bucket=self.age.currentData(),
            older_than_days=self.older_days.value() if self.older.isChecked() else None,
            mine=owner == ME,
            unassigned=owner == NOBODY,
            amount_min=_decimal(self.amount_min.text()),
            amount_max=_decimal(self.amount_max.text()),
            currency=self.currency.text().strip().upper() or None,
            text=self.text.text().strip() or None,
        )

    def set_filter(self, flt: BreakFilter, *, emit: bool = True) -> None:
        self._quiet = True
        try:
            for status, action in self.status_actions.items():
                action.setChecked(status in flt.statuses)
            _select(self.recon, flt.definition_ids[0] if flt.definition_ids else None)
            _select(self.break_type, flt.break_types[0] if flt.break_types else None)
            _select(self.category, flt.category)
            _select(self.root_cause, flt.root_cause)
            _select(self.age, flt.age_bucket)
            owner = ME if flt.mine else NOBODY if flt.unassigned else ANYONE
            _select(self.owner, owner)
            self.mine.setChecked(owner == ME)
            self.unassigned.setChecked(owner == NOBODY)
            self.older.setChecked(flt.older_than_days is not None)
            if flt.older_than_days is not None:
                self.older_days.setValue(flt.older_than_days)
            self.amount_min.setText("" if flt.amount_min is None else str(flt.amount_min))
            self.amount_max.setText("" if flt.amount_max is None else str(flt.amount_max))
            self.currency.setText(flt.currency or "")
            self.text.setText(flt.text or "")
        finally:
            self._quiet = False
        self._update_status_text()
        self._last = self.current()
        if emit:
            self.changed.emit(self._last)

    def clear(self) -> None:
        self.set_filter(DEFAULT_FILTER)

    def focus_search(self) -> None:
        self.text.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.text.selectAll()

    # --- reacting ---------------------------------------------------------------------------------------------------

    def _statuses_edited(self, _checked: bool) -> None:
        if self._quiet:
            return
        self._update_status_text()
        self._emit_now()

    def _set_statuses(self, statuses: tuple[str, ...]) -> None:
        self._quiet = True
        for status, action in self.status_actions.items():
            action.setChecked(status in statuses)
        self._quiet = False
        self._update_status_text()
        self._emit_now()

    def _update_status_text(self) -> None:
        chosen = [s for s, a in self.status_actions.items() if a.isChecked()]
        if not chosen:
            text = "Any status"
        elif tuple(chosen) == tuple(str(s) for s in OPEN_STATUSES):
            text = "Being worked"
        elif len(chosen) <= 2:
            text = ", ".join(status_label(s) for s in chosen)
        else:
            text = f"{len(chosen)} statuses"
        self.status_button.setText(text)

    def _owner_changed(self, _i: int) -> None:
        if self._quiet:
            return
        owner = self.owner.currentData()
        self._quiet = True
        self.mine.setChecked(owner == ME)
        self.unassigned.setChecked(owner == NOBODY)
        self._quiet = False
        self._emit_now()

    def _quick_owner(self, owner: str) -> None:
        if self._quiet:
            return
        self._quiet = True
        _select(self.owner, owner)
        self.mine.setChecked(owner == ME)
        self.unassigned.setChecked(owner == NOBODY)
        self._quiet = False
        self._emit_now()


def _refill(combo: QComboBox, items: list[tuple[str, object]]) -> None:
    data = combo.currentData()
    while combo.count() > 1:
        combo.removeItem(1)
    for text, value in items:
        combo.addItem(text, value)
    _select(combo, data)


def _select(combo: QComboBox, data: object) -> None:
    i = combo.findData(data)
    if i < 0 and data is not None:
        # A drill-down or saved filter may name a value not offered (yet): add it rather than lose it.
        combo.addItem(str(data), data)
        i = combo.count() - 1
    combo.setCurrentIndex(max(i, 0))
