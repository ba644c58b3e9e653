"""Widgets of the settlement queue pane: filter bar with group-by, cut-off countdowns, detail, bulk actions."""
