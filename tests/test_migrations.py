"""The models and the migrations describe the same schema, and the migrations go up, down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from app.models import Base
from app.services import schema
from app.services.db import Database
from app.services.errors import SchemaTooNew
from app.services.trade_search import include_object


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    else:
        db = Database(request.getfixturevalue("pg_empty_url"))
    yield db
    db.dispose()


def _diff(db: Database) -> list:
    with db.engine.connect() as conn:
        opts = {"compare_type": True, "render_as_batch": True, "include_object": include_object}
        ctx = MigrationContext.configure(conn, opts=opts)
        return compare_metadata(ctx, Base.metadata)


def test_models_and_migrations_agree(empty_db: Database) -> None:
    schema.upgrade(empty_db)
    assert _diff(empty_db) == []


def test_upgrade_downgrade_upgrade(empty_db: Database) -> None:
    schema.upgrade(empty_db)
    tables = set(inspect(empty_db.engine).get_table_names())
    assert {"trades", "audit_log", "breaks", "corrections", "settlement_instructions"} <= tables
    schema.downgrade(empty_db, "base")
    assert set(inspect(empty_db.engine).get_table_names()) <= {"alembic_version"}
    schema.upgrade(empty_db)
    assert set(inspect(empty_db.engine).get_table_names()) == tables
    assert schema.current_revision(empty_db) == schema.head_revision()
    assert _diff(empty_db) == []


def test_every_constraint_is_named(empty_db: Database) -> None:
    schema.upgrade(empty_db)
    insp = inspect(empty_db.engine)
    for table in insp.get_table_names():
        if table == "alembic_version":
            continue
        for fk in insp.get_foreign_keys(table):
            assert fk["name"] and fk["name"].startswith("fk_"), (table, fk)
        for uq in insp.get_unique_constraints(table):
            assert uq["name"] and uq["name"].startswith("uq_"), (table, uq)
        for ck in insp.get_check_constraints(table):
            assert ck["name"] and ck["name"].startswith("ck_"), (table, ck)


def test_database_newer_than_app_is_refused(empty_db: Database) -> None:
    schema.upgrade(empty_db)
    with empty_db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaTooNew, match="newer OpsDesk"):
        schema.upgrade(empty_db)


def test_start_up_fast_path_knows_the_same_head_as_alembic() -> None:
    assert schema.fast_head() == schema.head_revision()


def test_ensure_current_upgrades_an_empty_database_and_then_does_nothing(empty_db: Database) -> None:
    before, after = schema.ensure_current(empty_db)
    assert before is None and after == schema.head_revision()
    assert schema.ensure_current(empty_db) == (after, after)
    with empty_db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaTooNew):
        schema.ensure_current(empty_db)


def test_run_pair_lists_are_compressed_with_lz4_where_the_server_has_it(pg_empty_url: str) -> None:
    """A million-record run writes two large pair arrays; pglz costs ~0.9 s a run where lz4 costs ~0.25 s."""
    db = Database(pg_empty_url)
    try:
        schema.upgrade(db)
        with db.engine.connect() as conn:
            lz4 = conn.execute(
                text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
            ).scalar()
            found = dict(
                conn.execute(
                    text(
                        "SELECT attname, attcompression FROM pg_attribute "
                        "WHERE attrelid = 'recon_run_pairs'::regclass AND attname IN ('left_refs', 'right_refs')"
                    )
                ).all()
            )
        assert found == (
            {"left_refs": "l", "right_refs": "l"} if lz4 else {"left_refs": "", "right_refs": ""}
        )
        schema.downgrade(db, "0013")
        with db.engine.connect() as conn:
            after = (
                conn.execute(
                    text(
                        "SELECT DISTINCT attcompression FROM pg_attribute "
                        "WHERE attrelid = 'recon_run_pairs'::regclass AND attname IN ('left_refs', 'right_refs')"
                    )
                )
                .scalars()
                .all()
            )
        assert after == (["p"] if lz4 else [""])
    finally:
        db.dispose()
