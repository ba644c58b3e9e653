"""The SLA monitor pane's widgets: tiles, charts, health checklist, alert watcher and alert settings."""
