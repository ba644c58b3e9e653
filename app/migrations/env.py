"""Alembic environment: the URL comes from OpsDesk's settings (or a connection handed in), never from an ini file.

``render_as_batch`` lets the same migrations alter tables on SQLite, which cannot ALTER most things in place.
On PostgreSQL an advisory lock makes two workstations that start at once upgrade one after the other.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from app.config import resolve_database_url
from app.models import Base
from app.services.trade_search import include_object

config = context.config
target_metadata = Base.metadata
_MIGRATION_LOCK_KEY = 0x0A0D16


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        compare_server_default=False,
        # Objects the models cannot spell (the blotter's search index, migration 0011) are not differences.
        include_object=include_object,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or resolve_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or resolve_database_url()
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    _configure(connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
