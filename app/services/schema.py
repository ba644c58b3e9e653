"""Schema upgrades through Alembic: the app upgrades the database on start, or refuses if it is newer than us.

Start-up takes a fast path (:func:`ensure_current`): one SELECT of the stored revision compared with the newest
revision named in the migration files. Only when they differ is Alembic itself loaded (a third of a second of
imports) to do the upgrade or the refusal; a test keeps the fast path's idea of the head equal to Alembic's.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import exc, text

from .db import Database
from .errors import SchemaTooNew

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(db: Database) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation; URLs with escaped passwords need it doubled.
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head() or ""


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

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
    from alembic import command

    before = check_not_newer(db)
    with db.engine.begin() as conn:
        cfg = alembic_config(db)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current_revision(db) or ""


def downgrade(db: Database, revision: str) -> None:
    from alembic import command

    with db.engine.begin() as conn:
        cfg = alembic_config(db)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


_REVISION = re.compile(r"^revision(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.M)


@cache
def fast_head() -> str | None:
    """The head revision read straight from the migration files (no Alembic import); None if ambiguous."""
    revisions, downs = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        rev = _REVISION.search(source)
        if rev:
            revisions.add(rev.group(1))
        down = _DOWN.search(source)
        if down:
            downs.add(down.group(1))
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def stored_revision(db: Database) -> str | None:
    """The revision recorded in the database, by plain SQL; None for a database without a schema."""
    try:
        with db.engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except exc.OperationalError:
        if not db.ping():
            raise
        return None
    except exc.ProgrammingError:  # PostgreSQL: no such table yet
        return None


def ensure_current(db: Database) -> tuple[str | None, str]:
    """What the app does on start: nothing when the schema is current, else upgrade (or refuse if newer)."""
    head = fast_head()
    current = stored_revision(db)
    if head is not None and current == head:
        return current, current
    return upgrade(db)
