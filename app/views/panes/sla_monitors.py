"""SLA monitors: the items deadline rules watch (for now how many there are; ON_TRACK/AT_RISK/BREACHED comes next).

The overview service has no SLA states yet, so this pane counts the open items each SLA family watches: trades to
affirm, instructions to settle, breaks to resolve, corrections to approve.
"""

from __future__ import annotations

from app.models.enums import BreakStatus, CorrectionStatus, InstructionStatus, TradeStatus
from app.services import overview
from app.views.qt_models.status_counts import CountRow

from .summary import CardSpec, StatusSummaryPane

# (key, label, Overview field, statuses counted, tone, hint)
WATCHED: tuple[tuple[str, str, str, tuple[str, ...], str, str], ...] = (
    (
        "trades_to_affirm",
        "Trades to affirm",
        "trades_by_status",
        (TradeStatus.VALIDATED, TradeStatus.CONFIRMED),
        "warn",
        "Affirm by 21:00 ET on trade date (US Rule 15c6-2).",
    ),
    (
        "instructions_to_settle",
        "Instructions to settle",
        "instructions_by_status",
        (
            InstructionStatus.PENDING,
            InstructionStatus.INSTRUCTED,
            InstructionStatus.MATCHED,
            InstructionStatus.PARTIALLY_SETTLED,
            InstructionStatus.FAILED,
        ),
        "info",
        "Instruct before the market cut-off; settle on the intended date.",
    ),
    (
        "breaks_to_resolve",
        "Breaks to resolve",
        "breaks_by_status",
        (BreakStatus.OPEN, BreakStatus.ASSIGNED, BreakStatus.PROPOSED),
        "bad",
        "Resolve within N business days by category.",
    ),
    (
        "corrections_to_approve",
        "Corrections to approve",
        "corrections_by_status",
        (CorrectionStatus.PENDING,),
        "warn",
        "Approve within N hours.",
    ),
)


class SlaMonitorsPane(StatusSummaryPane):
    pane_id = "sla_monitors"
    title = "SLA monitors"
    subtitle = "Open items that deadline rules watch"
    icon_name = "sla_monitors"
    entity_types = frozenset(
        {
            "trades",
            "settlement_instructions",
            "breaks",
            "corrections",
            "sla_events",
            "sla_definitions",
        }
    )
    coming_next = (
        "each item rated ON_TRACK, AT_RISK or BREACHED against its rule, with deadline countdowns and "
        "attainment over time."
    )
    first_header = "Watched items"
    cards = (
        CardSpec("Open items watched", hint="Everything an SLA rule is counting down on."),
        CardSpec("Claimed by you", ("my_claimed",), "info", "Trades, instructions and breaks you own now."),
        CardSpec("Breaks to resolve", ("breaks_to_resolve",), "bad", "Open, assigned or proposed breaks."),
        CardSpec(
            "Failed settlements", ("failed_instructions",), "bad", "Instructions that failed to settle."
        ),
    )

    def present(self, result: object) -> None:
        assert isinstance(result, overview.Overview)
        rows = []
        for key, label, field, statuses, tone, hint in WATCHED:
            counts: dict[str, int] = getattr(result, field)
            rows.append(CountRow(key, label, sum(counts.get(s, 0) for s in statuses), tone, hint))
        self.model.set_rows(rows)
        figures = {r.key: r.count for r in rows}
        figures["my_claimed"] = result.my_claimed
        figures["failed_instructions"] = result.instructions_by_status.get(InstructionStatus.FAILED, 0)
        total = sum(r.count for r in rows)
        for spec, card in zip(self.cards, self.card_widgets, strict=True):
            value = total if spec.statuses is None else sum(figures.get(k, 0) for k in spec.statuses)
            card.set_value(value, spec.tone(value))
