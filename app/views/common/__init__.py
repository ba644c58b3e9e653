"""Pieces the table panes share: the windowed table view and its row painter, and the table-pane plumbing."""
