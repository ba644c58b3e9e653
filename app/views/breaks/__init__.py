"""Widgets of the break investigation pane: filter bar, drill-down chip, break detail, correction dialogs."""
