"""Qt item models (QAbstractItemModel subclasses) for the panes; kept apart from app.models (SQLAlchemy)."""
