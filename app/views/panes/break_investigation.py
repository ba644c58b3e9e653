"""Break investigation: reconciliation breaks to be worked (for now a summary by status)."""

from __future__ import annotations

from app.models.enums import BreakStatus as S

from .summary import CardSpec, StatusSummaryPane


class BreakInvestigationPane(StatusSummaryPane):
    pane_id = "break_investigation"
    title = "Break investigation"
    subtitle = "Reconciliation breaks by status"
    icon_name = "break_investigation"
    entity_types = frozenset({"breaks", "recon_runs", "recon_matches", "comments", "attachments"})
    coming_next = (
        "my queue of breaks, oldest and most valuable first, with the internal and external records side by side "
        "and the differing fields highlighted."
    )
    counts_field = "breaks_by_status"
    statuses = tuple(s.value for s in S)
    tones = {
        S.OPEN: "bad",
        S.ASSIGNED: "warn",
        S.PROPOSED: "info",
        S.RESOLVED: "ok",
        S.WRITTEN_OFF: "neutral",
    }
    cards = (
        CardSpec("Breaks", hint="All breaks, open and closed."),
        CardSpec("Unassigned", (S.OPEN,), "bad", "Open breaks nobody has claimed yet."),
        CardSpec("Being worked", (S.ASSIGNED,), "warn", "Claimed by a clerk."),
        CardSpec("Awaiting approval", (S.PROPOSED,), "info", "A correction has been proposed."),
    )
