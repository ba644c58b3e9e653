"""Settlement queue: instructions on their way to settling, and the ones that failed (for now a summary by status)."""

from __future__ import annotations

from app.models.enums import InstructionStatus as S

from .summary import CardSpec, StatusSummaryPane

OPEN = (S.PENDING, S.INSTRUCTED, S.MATCHED, S.PARTIALLY_SETTLED, S.FAILED)


class SettlementQueuePane(StatusSummaryPane):
    pane_id = "settlement_queue"
    title = "Settlement queue"
    subtitle = "Settlement instructions by status"
    icon_name = "settlement_queue"
    entity_types = frozenset(
        {
            "settlement_instructions",
            "settlement_messages",
            "fail_penalties",
        }
    )
    coming_next = (
        "the queue itself: unmatched and failing instructions with their MT548 reason codes (CMIS, DDAT, LACK…), "
        "penalties accrued, claim and re-instruct."
    )
    counts_field = "instructions_by_status"
    statuses = tuple(s.value for s in S)
    tones = {
        S.PENDING: "neutral",
        S.INSTRUCTED: "info",
        S.MATCHED: "info",
        S.PARTIALLY_SETTLED: "warn",
        S.SETTLED: "ok",
        S.FAILED: "bad",
        S.CANCELLED: "neutral",
    }
    cards = (
        CardSpec("Instructions", hint="All settlement instructions."),
        CardSpec("Open", OPEN, "info", "Not yet settled or cancelled."),
        CardSpec(
            "Partially settled", (S.PARTIALLY_SETTLED,), "warn", "Settled in part; the rest is pending."
        ),
        CardSpec(
            "Failed", (S.FAILED,), "bad", "Failed to settle on the intended date; penalties accrue daily."
        ),
    )
