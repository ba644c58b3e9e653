"""Integer units stored beside the numbers the reconciliation reads most (PostgreSQL only).

A reconciliation compares numbers as exact integers of their column's scale (see ``recon.sources``). On PostgreSQL
the read used to make them in the query (``CAST(x * 10^s AS BIGINT)``) for every row of every run: about a third of
a second of server CPU per column per million rows, at the moment both cores are busy reading the two sides.
Migration 0019 stores them once, as generated columns computed when a row is written (``<column>_units``), on the
two sources that are reconciled by the million: trades and statement lines. A value too large for the integer
(beyond 9e18 units) gets NULL there and the read falls back to the cast for that row, so the result is the same
either way (tested).

The models do not declare these columns (nothing writes or maps them; SQLite has none), so Alembic's comparison
leaves them out (``is_stored_units``).
"""

from __future__ import annotations

#: table -> {column: the generated column holding its integer units}
STORED_UNITS: dict[str, dict[str, str]] = {
    "trades": {
        "quantity": "quantity_units",
        "price": "price_units",
        "gross_amount": "gross_amount_units",
        "net_amount": "net_amount_units",
    },
    "statement_lines": {
        "quantity": "quantity_units",
        "price": "price_units",
        "amount": "amount_units",
    },
}


def is_stored_units(table: str | None, column: str | None) -> bool:
    return bool(table and column and column in STORED_UNITS.get(table, {}).values())
