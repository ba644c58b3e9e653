"""How the app's PostgreSQL sessions are set up: a server on this workstation gets no parallel query workers from
them (they took the GUI thread's cores), a remote server keeps its own setting, and options in the URL still win."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.services.db import Database, server_is_local


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("postgresql+psycopg://ops@127.0.0.1:5432/opsdesk", True),
        ("postgresql+psycopg://ops@localhost/opsdesk", True),
        ("postgresql+psycopg://ops@[::1]:5432/opsdesk", True),
        ("postgresql+psycopg:///opsdesk", True),  # libpq's default Unix socket
        ("postgresql+psycopg://ops@/opsdesk?host=/var/run/postgresql", True),
        ("postgresql+psycopg://ops@db.broker.internal:5432/opsdesk", False),
        ("postgresql+psycopg://ops@10.20.0.7/opsdesk", False),
    ],
)
def test_which_servers_are_on_this_workstation(url: str, local: bool) -> None:
    assert server_is_local(url) is local


def _setting(db: Database, name: str) -> str:
    with db.engine.connect() as conn:
        return str(conn.execute(text(f"SHOW {name}")).scalar())


def _source(db: Database, name: str) -> str:
    with db.engine.connect() as conn:
        return str(conn.execute(text("SELECT source FROM pg_settings WHERE name = :n"), {"n": name}).scalar())


def test_a_local_server_starts_no_parallel_workers_for_the_app(pg_db: Database) -> None:
    """On a server on this machine the app's connections ask for no parallel workers (the setting's source is the
    client's startup packet); on a server elsewhere they ask nothing, and the server's own setting applies."""
    if not server_is_local(pg_db.url):
        assert _source(pg_db, "max_parallel_workers_per_gather") != "client"
        return
    assert _source(pg_db, "max_parallel_workers_per_gather") == "client"
    assert _setting(pg_db, "max_parallel_workers_per_gather") == "0"
    # Every pooled connection, not only the first: the option travels in each connection's startup packet.
    with pg_db.engine.connect() as a, pg_db.engine.connect() as b:
        assert {str(c.execute(text("SHOW max_parallel_workers_per_gather")).scalar()) for c in (a, b)} == {
            "0"
        }


def test_options_in_the_url_are_kept_and_win(pg_db: Database) -> None:
    base = make_url(pg_db.url)
    mine = Database(
        base.update_query_dict(
            {"options": "-c work_mem=8MB -c max_parallel_workers_per_gather=1"}
        ).render_as_string(hide_password=False)
    )
    try:
        assert _setting(mine, "work_mem") == "8MB"
        assert _setting(mine, "max_parallel_workers_per_gather") == "1"
    finally:
        mine.dispose()
