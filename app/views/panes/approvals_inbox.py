"""Approvals inbox: corrections waiting for a supervisor (maker-checker; for now a summary by status)."""

from __future__ import annotations

from app.models.enums import CorrectionStatus as S

from .summary import CardSpec, StatusSummaryPane


class ApprovalsInboxPane(StatusSummaryPane):
    pane_id = "approvals_inbox"
    title = "Approvals inbox"
    subtitle = "Corrections by status (maker–checker)"
    icon_name = "approvals_inbox"
    entity_types = frozenset({"corrections", "correction_approvals"})
    coming_next = (
        "the inbox: corrections made by others for you to approve or reject with a reason, never your own, "
        "with second approvals above the thresholds."
    )
    counts_field = "corrections_by_status"
    statuses = tuple(s.value for s in S)
    tones = {S.PENDING: "warn", S.APPROVED: "ok", S.REJECTED: "bad", S.WITHDRAWN: "neutral"}
    cards = (
        CardSpec("Corrections", hint="All corrections ever proposed."),
        CardSpec("Awaiting approval", (S.PENDING,), "warn", "Proposed, not yet approved or rejected."),
        CardSpec("Approved", (S.APPROVED,), "info", "Approved and applied."),
        CardSpec("Rejected", (S.REJECTED,), "info", "Sent back to the maker."),
    )
