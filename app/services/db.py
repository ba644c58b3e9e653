"""Engine and unit of work: the one place that opens connections and draws transaction boundaries.

SQLite (embedded default) runs in WAL mode with foreign keys on; write transactions start with ``BEGIN IMMEDIATE``
so two workstations never interleave writes (the audit hash chain depends on that). PostgreSQL is the shared team
database; its connections are checked before use so a workstation recovers by itself after the VPN drops.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import resolve_database_url

from .errors import DatabaseUnavailable

#: Hosts that put the PostgreSQL server on this workstation (no host: libpq's local socket).
_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})


def server_is_local(url: str) -> bool:
    """True when a PostgreSQL URL names a server on this machine (loopback, or a Unix socket directory)."""
    u = make_url(url)
    host = u.host or str(u.query.get("host") or "")
    return host in _LOCAL_HOSTS or host.startswith("/")


#: A server on the workstation shares its cores with the GUI thread. Its parallel query workers, which a count or a
#: sum over a million trades starts two of, then took both cores of a two-core machine and the GUI thread waited up
#: to 34 ms for one (blotter bench, opening: longest stall 54-66 ms with them, 25-41 ms without), for a count of a
#: million trades they made 11-16 ms faster (50 ms with two, 45 with one, 61 without). This app's sessions on a
#: local server start none; a remote server's own setting is left as its administrator chose it.
LOCAL_SERVER_OPTIONS = "-c max_parallel_workers_per_gather=0"


def _describe(url: str) -> str:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return f"SQLite {u.database}"
    return f"PostgreSQL {u.username or ''}@{u.host or 'localhost'}:{u.port or 5432}/{u.database}"


class Database:
    """A connection pool plus session factories for read and write units of work."""

    def __init__(self, url: str | None = None, *, echo: bool = False, connect_timeout: int = 5) -> None:
        self.url = resolve_database_url(url)
        self.backend = make_url(self.url).get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.backend == "sqlite":
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=5,
                pool_recycle=1800,
                connect_args={
                    "connect_timeout": connect_timeout,
                    "application_name": "opsdesk",
                    # Over a VPN a link can go half-open: without keepalives a query waits for TCP to give up
                    # (minutes). These make libpq notice a dead peer in ~25 s and fail the call cleanly.
                    "keepalives": 1,
                    "keepalives_idle": 10,
                    "keepalives_interval": 5,
                    "keepalives_count": 3,
                    "tcp_user_timeout": 25000,
                },
            )
            if server_is_local(self.url):
                given = make_url(self.url).query.get("options")
                given = " ".join(given) if isinstance(given, tuple) else given
                # Sent in the startup packet: no round trip of its own. Options the URL gives come after, and win.
                kwargs["connect_args"]["options"] = f"{LOCAL_SERVER_OPTIONS} {given or ''}".strip()
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.backend == "sqlite":
            _configure_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = (
            self.engine.execution_options(opsdesk_write=True) if self.backend == "sqlite" else self.engine
        )
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def description(self) -> str:
        """Human-readable name of the database, without the password (status bar, CLI)."""
        return _describe(self.url)

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading. Never committed: closing it rolls the connection back, so nothing is changed by
        accident, while the objects read stay usable (detached, not expired) after the block."""
        with translate_errors(), self._sessions() as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends normally, rolls back on any exception."""
        with translate_errors(), self._write_sessions() as session, session.begin():
            yield session

    def ping(self) -> bool:
        """True when the database answers. Used by the connection monitor."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except exc.SQLAlchemyError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver-level connection failures into a DatabaseUnavailable a clerk can act on."""
    try:
        yield
    except exc.OperationalError as err:
        if _is_disconnect(err):
            raise DatabaseUnavailable(
                "The database cannot be reached right now (network or server down). Nothing was changed; "
                f"OpsDesk keeps retrying. Detail: {str(err.orig).strip().splitlines()[0] if err.orig else err}"
            ) from err
        raise
    except exc.DBAPIError as err:
        if err.connection_invalidated:
            raise DatabaseUnavailable(
                "The connection to the database was lost. Nothing was changed; try again in a moment."
            ) from err
        raise


def _is_disconnect(err: exc.OperationalError) -> bool:
    if err.connection_invalidated:
        return True
    text_ = str(err.orig or err).lower()
    return any(
        s in text_
        for s in (
            "connection refused",
            "could not connect",
            "server closed the connection",
            "connection timed out",
            "timeout expired",
            "terminating connection",
            "connection is closed",
            "consuming input failed",
            "unable to open database file",
            "no route to host",
            "the database system is",
        )
    )


def _configure_sqlite(engine: Engine) -> None:
    # The pysqlite driver's own transaction handling cannot issue BEGIN IMMEDIATE; take it over (SQLAlchemy's
    # documented recipe) and begin transactions ourselves.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("opsdesk_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
