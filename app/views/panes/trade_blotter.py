"""Trade blotter: every trade the front office sent, by where it is in its life (for now a summary by status)."""

from __future__ import annotations

from app.models.enums import TradeStatus as S

from .summary import CardSpec, StatusSummaryPane


class TradeBlotterPane(StatusSummaryPane):
    pane_id = "trade_blotter"
    title = "Trade blotter"
    subtitle = "Trades by status, from validation to settlement"
    icon_name = "trade_blotter"
    entity_types = frozenset({"trades", "trade_versions", "trade_exceptions", "import_batches"})
    coming_next = (
        "the full blotter: a million trades paged from the database, sorted and filtered there, "
        "with the repair queue and each trade's front-office versions."
    )
    counts_field = "trades_by_status"
    statuses = tuple(s.value for s in S)
    tones = {
        S.REPAIR: "bad",
        S.VALIDATED: "info",
        S.CONFIRMED: "info",
        S.AFFIRMED: "info",
        S.INSTRUCTED: "info",
        S.SETTLED: "ok",
        S.PARTIALLY_SETTLED: "warn",
        S.FAILED: "bad",
        S.CANCELLED: "neutral",
    }
    cards = (
        CardSpec("Trades", hint="All trades, whatever their status."),
        CardSpec("In repair", (S.REPAIR,), "bad", "Trades that failed validation and wait for a repair."),
        CardSpec("Failed", (S.FAILED,), "bad", "Trades whose settlement failed."),
        CardSpec(
            "To affirm",
            (S.VALIDATED, S.CONFIRMED),
            "warn",
            "Validated or confirmed, not yet affirmed (US: same-day affirmation, DTC cut-off 21:00 ET).",
        ),
    )
