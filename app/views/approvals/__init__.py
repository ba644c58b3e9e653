"""Widgets of the approvals inbox pane: the decision panel with before/after, refusal text and comment."""
