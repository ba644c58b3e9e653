"""Schema upgrades through Alembic: the app upgrades the database on start, or refuses if it is newer than us."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .db import Database
from .errors import SchemaTooNew

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation; URLs with escaped passwords need it doubled.
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head() or ""


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def known_revisions() -> set[str]:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return {rev.revision for rev in script.walk_revisions()}


def check_not_newer(db: Database) -> str | None:
    current = current_revision(db)
    if current is not None and current not in known_revisions():
        raise SchemaTooNew(
            f"The database {db.description} was upgraded by a newer OpsDesk (schema {current}); this OpsDesk "
            f"knows up to {head_revision()}. Install the newer OpsDesk to use this database."
        )
    return current


def upgrade(db: Database, revision: str = "head") -> tuple[str | None, str]:
    """Bring the schema to ``revision``. Returns (before, after)."""
    before = check_not_newer(db)
    with db.engine.begin() as conn:
        cfg = alembic_config(db)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current_revision(db) or ""


def downgrade(db: Database, revision: str) -> None:
    with db.engine.begin() as conn:
        cfg = alembic_config(db)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
