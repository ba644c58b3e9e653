"""Where OpsDesk keeps its files and which database it talks to."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "OpsDesk"
ENV_DATABASE_URL = "OPSDESK_DATABASE_URL"
ENV_PASSWORD = "OPSDESK_PASSWORD"
ENV_DATA_DIR = "OPSDESK_DATA_DIR"


def data_dir() -> Path:
    """The user's data directory (overridable with OPSDESK_DATA_DIR, which tests and portable installs use)."""
    path = Path(os.environ.get(ENV_DATA_DIR) or user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'opsdesk.sqlite'}"


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (``postgres://``, ``postgresql://``) and use the psycopg 3 driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def resolve_database_url(cli_value: str | None = None) -> str:
    """``--db`` wins, then OPSDESK_DATABASE_URL, then the embedded SQLite file in the user's data directory."""
    return normalise_url(cli_value or os.environ.get(ENV_DATABASE_URL) or default_database_url())
