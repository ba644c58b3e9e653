"""Shared fixtures: a fresh, migrated database per test on SQLite and on PostgreSQL, and users of every role.

Each backend is migrated once per session into a template (a SQLite file copied per test; a PostgreSQL template
database cloned per test), so every test starts from the real schema the migrations build, triggers included.
When OPSDESK_REQUIRE_PG is set (CI does), failing to get a PostgreSQL server is an error, never a skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.models.enums import Role
from app.services import auth, schema
from app.services.db import Database
from app.services.permissions import SYSTEM, Actor

from .pgserver import PgUnavailable, TempPostgres

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Real argon2id, with cheap parameters: the suite creates hundreds of users and must stay fast.
auth.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))

PASSWORD = "correct-horse-9"
_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the real user's data directory or database from a test."""
    os.environ["OPSDESK_DATA_DIR"] = str(tmp_path_factory.mktemp("opsdesk-data"))
    os.environ.pop("OPSDESK_DATABASE_URL", None)


# --- PostgreSQL ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    url = os.environ.get("OPSDESK_TEST_PG_URL")
    if url:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
        return
    try:
        server = TempPostgres()
        url = server.start()
    except PgUnavailable as err:
        if os.environ.get("OPSDESK_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL is required (OPSDESK_REQUIRE_PG) but could not be started: {err}")
        pytest.skip(f"PostgreSQL tests need a server: {err}")
    try:
        yield url
    finally:
        server.stop()


def _pg_url(admin_url: str, dbname: str) -> str:
    return make_url(admin_url).set(database=dbname).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    name = f"opsdesk_tpl_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(_pg_url(pg_admin_url, name))
    schema.upgrade(db)
    db.dispose()
    yield name
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_empty_url(pg_admin_url: str) -> Iterator[str]:
    """An empty PostgreSQL database (no schema), for migration tests."""
    name = f"opsdesk_e_{os.getpid()}_{next(_counter)}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield _pg_url(pg_admin_url, name)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextlib.contextmanager
def pg_clone(admin_url: str, template: str, name: str) -> Iterator[Database]:
    """A throwaway PostgreSQL database ``name`` cloned from ``template``, dropped when the block ends."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    db = Database(_pg_url(admin_url, name))
    yield db
    db.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_db(pg_admin_url: str, pg_template: str) -> Iterator[Database]:
    with pg_clone(pg_admin_url, pg_template, f"opsdesk_t_{os.getpid()}_{next(_counter)}") as db:
        yield db


# --- SQLite -------------------------------------------------------------------------------------------------------


def sqlite_copy(template: Path, path: Path) -> Database:
    """A database on a fresh copy of a template SQLite file."""
    shutil.copy(template, path)
    return Database(f"sqlite:///{path}")


def close_template(db: Database) -> None:
    """Fold the WAL into the file and close it, so a plain file copy carries everything that was written."""
    with db.engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.dispose()


def demo_template_file(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, *, trades: int, seed: int
) -> Path:
    """A demo book (``build_demo``, users signed in with PASSWORD) built once into a copy of the migrated
    template; GUI tests copy it per test with ``sqlite_copy``."""
    from app.services import demo  # the demo builder is heavy; only the GUI tests that ask for it load it

    path = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    db = sqlite_copy(sqlite_template, path)
    demo.build_demo(db, SYSTEM, trades=trades, seed=seed, password=PASSWORD)
    close_template(db)
    return path


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.sqlite"
    db = Database(f"sqlite:///{path}")
    schema.upgrade(db)
    close_template(db)
    return path


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    db = sqlite_copy(sqlite_template, tmp_path / "opsdesk.sqlite")
    yield db
    db.dispose()


# --- Either backend -----------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> Database:
    """The same test on the embedded SQLite file and on the shared PostgreSQL database."""
    return request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")


@pytest.fixture(params=["sqlite", "postgresql"])
def two_dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    """Two fresh databases of the same backend."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        a, b = sqlite_copy(template, tmp_path / "a.sqlite"), sqlite_copy(template, tmp_path / "b.sqlite")
        yield a, b
        a.dispose()
        b.dispose()
        return
    admin, template = request.getfixturevalue("pg_admin_url"), request.getfixturevalue("pg_template")
    with (
        pg_clone(admin, template, f"opsdesk_two_a_{os.getpid()}") as a,
        pg_clone(admin, template, f"opsdesk_two_b_{os.getpid()}") as b,
    ):
        yield a, b


@pytest.fixture
def users(db: Database) -> dict[str, Actor]:
    """One signed-in actor per demo role: clerk1, clerk2, supervisor, supervisor2, admin, auditor."""
    admin = auth.create_user(db, SYSTEM, "admin", Role.ADMIN, PASSWORD, full_name="Ada Admin")
    out = {"admin": admin}
    for name, role in [
        ("clerk1", Role.CLERK),
        ("clerk2", Role.CLERK),
        ("supervisor", Role.SUPERVISOR),
        ("supervisor2", Role.SUPERVISOR),
        ("auditor", Role.AUDITOR),
    ]:
        out[name] = auth.create_user(db, admin, name, role, PASSWORD, full_name=name.title())
    return out


@pytest.fixture
def tasks(qtbot: Any) -> Iterator[Any]:
    """The GUI tests' background task runner, shut down (its workers waited for) when the test ends."""
    # Imported here so the service tests never load Qt.
    from app.views.tasks import TaskRunner

    runner = TaskRunner()
    yield runner
    runner.shutdown(10_000)
