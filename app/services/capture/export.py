"""Exporting the blotter: what the blotter shows for a filter and sort, to CSV or XLSX.

Rows come from services.blotter.fetch_page, the blotter's own query, page after page by keyset (``after`` the last
row of the previous page), so the file holds exactly what the blotter would show, in the same order, and memory
stays flat however many trades match: a page of tuples at a time, never ORM objects.

Values: CSV writes decimals exactly as stored (``189.25000000``), dates ISO 8601, timestamps ISO 8601 in the
user's time zone with its offset (as the blotter shows them). XLSX writes decimals as numbers, dates as dates and
timestamps as the user's local time (Excel has no time zones; the column header names the zone); Excel holds
1,048,575 data rows, so a larger export to XLSX is refused before anything is written. The file is written under a
temporary name and renamed at the end: a failed or cancelled export never leaves half a file.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from app.services import blotter
from app.services.blotter import COLUMN_KEYS, COLUMNS, BlotterFilter, Sort
from app.services.db import Database
from app.services.errors import OpsDeskError, ValidationFailed
from app.services.permissions import Actor, Permission, require

PAGE = 5_000
XLSX_MAX_ROWS = 1_048_575  # Excel's sheet limit, less the header row
FORMATS = ("csv", "xlsx")


class ExportCancelled(OpsDeskError):
    """The user stopped the export; no file was written."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    rows: int
    columns: tuple[str, ...]


def default_columns() -> tuple[str, ...]:
    """The columns the blotter shows by default, in its order."""
    return tuple(c.key for c in COLUMNS if c.default_visible)


def _zone(actor: Actor) -> ZoneInfo:
    try:
        return ZoneInfo(actor.timezone)
    except Exception:  # an unknown zone name must not stop an export; show UTC
        return ZoneInfo("UTC")


def iter_rows(
    db: Database, actor: Actor, flt: BlotterFilter, sort: Sort, *, page_size: int = PAGE
) -> Iterator[list[tuple[Any, ...]]]:
    """The blotter's rows for the filter and sort, page by page (keyset continuation), values in COLUMN_KEYS order."""
    after = None
    while True:
        page = blotter.fetch_page(db, actor, flt, sort, limit=page_size, after=after)
        if page.rows:
            yield page.rows
        if len(page.rows) < page_size:
            return
        after = page.last_key


def csv_value(value: Any, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def xlsx_value(value: Any, zone: ZoneInfo) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.astimezone(zone).replace(tzinfo=None)
    return value


def export_blotter(
    db: Database,
    actor: Actor,
    path: str | Path,
    flt: BlotterFilter | None = None,
    sort: Sort | None = None,
    *,
    columns: Sequence[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], object] | None = None,
    page_size: int = PAGE,
) -> ExportResult:
    """Write the blotter's rows for ``flt`` and ``sort`` to ``path`` (.csv or .xlsx); see the module docstring.

    ``columns``: blotter column keys to write (default: the blotter's default columns). ``progress(done, total,
    text)`` after each page; ``cancel()`` returning True (or raising) stops the export and removes the partial file.
    """
    require(actor, Permission.VIEW)
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValidationFailed(f"Cannot export to '{path.name}': give a file ending in .csv or .xlsx.")
    flt = flt or BlotterFilter()
    sort = sort or Sort()
    keys = tuple(columns) if columns else default_columns()
    unknown = [k for k in keys if k not in COLUMN_KEYS]
    if unknown:
        raise ValidationFailed(
            f"Unknown blotter columns: {', '.join(unknown)}. Columns: {', '.join(COLUMN_KEYS)}."
        )
    if not path.parent.exists():
        raise ValidationFailed(f"Cannot export to {path}: the folder {path.parent} does not exist.")
    total = blotter.count(db, actor, flt)
    if fmt == "xlsx" and total > XLSX_MAX_ROWS:
        raise ValidationFailed(
            f"{total:,} trades match this filter but an XLSX sheet holds {XLSX_MAX_ROWS:,}; "
            "export to CSV or narrow the filter."
        )
    zone = _zone(actor)
    labels = {c.key: c.label for c in COLUMNS}
    index = [COLUMN_KEYS.index(k) for k in keys]
    header = [labels[k] + (f" ({zone.key})" if k in _datetime_keys() and fmt == "xlsx" else "") for k in keys]
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".{fmt}.part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    written = 0

    def step(done: int) -> None:
        if cancel is not None and cancel() is True:
            raise ExportCancelled(f"The export to {path.name} was cancelled; no file was written.")
        if progress is not None:
            progress(done, total, f"Exported {done:,} of {total:,} trades")

    try:
        step(0)
        if fmt == "csv":
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                for rows in iter_rows(db, actor, flt, sort, page_size=page_size):
                    w.writerows([csv_value(r[i], zone) for i in index] for r in rows)
                    written += len(rows)
                    step(written)
        else:
            written = _write_xlsx(tmp, header, keys, index, zone, db, actor, flt, sort, page_size, step)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(path=path, format=fmt, rows=written, columns=keys)


def _datetime_keys() -> set[str]:
    return {c.key for c in COLUMNS if c.kind == "datetime"}


def _write_xlsx(
    tmp: Path,
    header: list[str],
    keys: tuple[str, ...],
    index: list[int],
    zone: ZoneInfo,
    db: Database,
    actor: Actor,
    flt: BlotterFilter,
    sort: Sort,
    page_size: int,
    step: Callable[[int], None],
) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    kinds = {c.key: c.kind for c in COLUMNS}
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Blotter")
    bold = Font(bold=True)
    title_cells = []
    for text in header:
        cell = WriteOnlyCell(ws, value=text)
        cell.font = bold
        title_cells.append(cell)
    ws.append(title_cells)
    formats = {"date": "yyyy-mm-dd", "datetime": "yyyy-mm-dd hh:mm:ss"}
    written = 0
    for rows in iter_rows(db, actor, flt, sort, page_size=page_size):
        for r in rows:
            out = []
            for k, i in zip(keys, index, strict=True):
                value = xlsx_value(r[i], zone)
                fmt = formats.get(kinds[k])
                if fmt and value is not None:
                    cell = WriteOnlyCell(ws, value=value)
                    cell.number_format = fmt
                    out.append(cell)
                else:
                    out.append(value)
            ws.append(out)
        written += len(rows)
        step(written)
    wb.save(tmp)
    return written
