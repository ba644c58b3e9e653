"""Qt views: windows, panes, dialogs. They call services through the background-operation helper only."""
