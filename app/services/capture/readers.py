"""Reading trade files: refuse a malformed file as a whole, split a readable one into lines of canonical columns.

A file is refused (``ValidationFailed`` naming the file and the problem, nothing imported) when it cannot be a
trade file at all: empty, binary (NUL bytes, or a ZIP where text was expected), not decodable in the profile's
encoding, a damaged or truncated XLSX workbook, a CSV whose last line is cut short, or a header that lacks required
columns. A readable file whose individual lines are wrong (a line with too many or too few fields) keeps going:
those lines are reported as rejected with their line number, and the others are imported.

Line numbers are the file's physical lines (header = line 1) for CSV, and the worksheet's row numbers for XLSX, so
a clerk can open the file at the line the report names.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from app.services.errors import ValidationFailed

from .profiles import COUNTERPARTY_KEYS, REQUIRED, Profile
from .units import frame_of

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls and other OLE compound files


@dataclass(frozen=True)
class Problem:
    """One refused line: where, which field, why (code and words a clerk understands)."""

    line: int
    field: str
    code: str
    reason: str


@dataclass
class RawTable:
    """A readable file as canonical string columns, one row per data line that had the right shape."""

    file_name: str
    fmt: str  # CSV or XLSX
    profile: Profile
    frame: pd.DataFrame  # canonical field -> str column ('' when absent or empty)
    lines: np.ndarray  # int64 line number of each frame row
    rejected: list[Problem] = field(default_factory=list)
    blank_lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ignored_columns: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    # Unquoted CSV: every physical line as text (index = line number - 1), kept as the versions' payload, and
    # whether all of it can go into a JSON string without escaping.
    raw_lines: list[str] | None = None
    json_safe: bool = False

    @property
    def skipped(self) -> int:
        return int(self.blank_lines.size)

    def require_data(self) -> RawTable:
        """A file with a header and no trade line is refused (an empty export, a wrong file)."""
        if self.data_lines == 0:
            raise refuse(self.file_name, "it has a header but no trade lines")
        return self

    @property
    def data_lines(self) -> int:
        """Lines that carried data: rows read plus lines refused for their shape (blank lines not counted)."""
        return int(self.frame.shape[0]) + len(self.rejected)


def refuse(file_name: str, problem: str) -> ValidationFailed:
    return ValidationFailed(
        f"{file_name} was not imported: {problem}. Nothing was changed.", [(file_name, "", problem)]
    )


def check_not_binary(data: bytes, file_name: str, expected: str) -> None:
    if not data or data.isspace():
        raise refuse(file_name, "the file is empty")
    if data.startswith(ZIP_MAGIC) or data.startswith(OLE_MAGIC):
        raise refuse(
            file_name,
            f"it is a binary file (a spreadsheet or archive), not {expected}; "
            "choose the XLSX format for Excel workbooks",
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise refuse(
            file_name,
            f"it is binary, not {expected} (a NUL byte at offset {nul}; UTF-16 text must be saved as UTF-8)",
        )


def decode(data: bytes, encoding: str, file_name: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise refuse(
            file_name,
            f"it is not valid {encoding} text (byte 0x{data[err.start]:02x} on line {line}, offset {err.start}); "
            "save it in that encoding or choose the profile of the system that wrote it",
        ) from None
    except LookupError:
        raise refuse(file_name, f"the profile names an unknown text encoding '{encoding}'") from None


def _map_header(header: list[str], profile: Profile, file_name: str) -> tuple[dict[str, int], list[str]]:
    """canonical field -> column index; refuse when required columns are missing."""
    norm = [h.strip().lstrip("\ufeff").casefold() for h in header]
    positions: dict[str, int] = {}
    for canonical, title in profile.columns.items():
        key = title.strip().casefold()
        if key in norm:
            positions[canonical] = norm.index(key)
    missing = [profile.columns[f] for f in REQUIRED if f not in positions]
    if not any(k in positions for k in COUNTERPARTY_KEYS):
        missing.append(" or ".join(profile.columns[k] for k in COUNTERPARTY_KEYS if k in profile.columns))
    if missing:
        shown = ", ".join(h.strip() for h in header[:20]) or "(none)"
        raise refuse(
            file_name,
            f"the columns {', '.join(missing)} required by profile '{profile.name}' are missing "
            f"(the file's header has: {shown}); is this the right profile?",
        )
    used = set(positions.values())
    ignored = [h.strip() for i, h in enumerate(header) if i not in used and h.strip()]
    return positions, ignored


def _frame(rows: dict[str, list[str] | np.ndarray], n: int) -> pd.DataFrame:
    return frame_of({k: (list(v) if len(v) == n else [""] * n) for k, v in rows.items()})


# --- CSV -------------------------------------------------------------------------------------------------------------


def read_csv(data: bytes, file_name: str, profile: Profile) -> RawTable:
    check_not_binary(data, file_name, "a CSV text file")
    text = decode(data, profile.encoding, file_name)
    if text.startswith("\ufeff"):
        text = text[1:]
    # Quoted fields (separators or line breaks inside values) and bare carriage returns need a real CSV reader;
    # everything else is split with numpy over the bytes and parsed by pandas' C reader.
    if '"' in text or ("\r" in text and text.count("\r") != text.count("\r\n")):
        return _read_quoted(text.replace("\r\n", "\n").replace("\r", "\n"), file_name, profile)
    ascii_compatible = profile.encoding.lower().replace("_", "-") in ("utf-8", "utf-8-sig", "utf8", "ascii")
    raw = data if ascii_compatible else text.encode("utf-8")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return _read_plain(raw, file_name, profile)


def _line_bounds(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets of each line (end excludes the newline and a carriage return before it)."""
    arr = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(arr)]))
    if raw.endswith(b"\n"):
        starts, ends = starts[:-1], ends[:-1]
    cr = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13)
    return starts, ends - cr


def _read_plain(raw: bytes, file_name: str, profile: Profile) -> RawTable:
    """No quoting: every physical line is a record. Field counts and blank lines are found with numpy over the
    bytes (the separator and the newline are single bytes in UTF-8 and the single-byte encodings); well-shaped
    lines go to pandas' C parser, the others are reported by line number."""
    sep = profile.delimiter
    sep_byte = sep.encode("utf-8")
    if len(sep_byte) != 1:
        return _read_quoted(raw.decode("utf-8").replace("\r\n", "\n"), file_name, profile)
    starts, ends = _line_bounds(raw)
    first_end = int(ends[0]) if len(ends) else 0
    header = raw[:first_end].decode("utf-8").split(sep)
    positions, ignored = _map_header(header, profile, file_name)
    width = len(header)
    arr = np.frombuffer(raw, dtype=np.uint8)
    sep_pos = np.flatnonzero(arr == sep_byte[0])
    fields = np.searchsorted(sep_pos, ends) - np.searchsorted(sep_pos, starts) + 1
    lengths = ends - starts
    # Blank: empty, or nothing but spaces, tabs and separators (checked in Python for the few short lines).
    blank = lengths == 0
    for i in np.flatnonzero(~blank & (lengths - (fields - 1) < 8)):
        if not raw[starts[i] : ends[i]].replace(sep_byte, b"").strip():
            blank[i] = True
    blank[0] = False
    line_no = np.arange(1, len(starts) + 1, dtype=np.int64)
    wrong = ~blank & (fields != width)
    wrong[0] = False
    if len(starts) > 1 and not raw.endswith(b"\n") and wrong[-1] and fields[-1] < width:
        raise refuse(
            file_name,
            f"it looks truncated: its last line ({line_no[-1]}) has {fields[-1]} of {width} fields and no line end",
        )
    rejected = [
        Problem(
            int(line_no[i]), "", "FIELD_COUNT", f"the line has {fields[i]} fields; the header has {width}"
        )
        for i in np.flatnonzero(wrong)
    ]
    good = ~blank & ~wrong
    good[0] = False
    kept = int(good.sum())
    if kept == 0:
        frame = _frame({k: [] for k in positions}, 0)
    else:
        skip = np.flatnonzero(~good)  # header, blank and wrong lines (0-based line indexes)
        used = sorted(set(positions.values()))
        # Plain object columns: reading them as categoricals in the C reader measured slower than reading objects
        # and factorising the columns afterwards (convert.py).
        parsed = pd.read_csv(
            io.BytesIO(raw),
            sep=sep,
            header=None,
            skiprows=skip.tolist() if len(skip) > 1 else [0],
            skip_blank_lines=False,
            dtype=object,
            keep_default_na=False,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            usecols=used,
            encoding="utf-8",
            engine="c",
        )
        if len(parsed) != kept:  # the C reader split lines differently: let the csv module decide
            return _read_quoted(raw.decode("utf-8"), file_name, profile)
        frame = frame_of({k: parsed[i].to_numpy(dtype=object) for k, i in positions.items()})
    text_lines = raw.decode("utf-8").split("\n")
    if raw.count(b"\r"):
        text_lines = [t[:-1] if t.endswith("\r") else t for t in text_lines]
    # JSON strings need escaping for control characters (tabs included) and backslashes; quotes are absent here.
    json_safe = not bool(np.any(((arr < 32) & (arr != 10) & (arr != 13)) | (arr == 92)))
    return RawTable(
        file_name,
        "CSV",
        profile,
        frame,
        line_no[good],
        rejected,
        line_no[blank],
        ignored,
        header=[h.strip() for h in header],
        raw_lines=text_lines,
        json_safe=json_safe,
    )


def _read_quoted(text: str, file_name: str, profile: Profile) -> RawTable:
    """Quoted fields may hold separators and line breaks: the csv module reads records and knows their lines."""
    reader = csv.reader(io.StringIO(text), delimiter=profile.delimiter, strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as err:
        raise refuse(file_name, f"its header cannot be read ({err})") from None
    positions, ignored = _map_header(header, profile, file_name)
    width = len(header)
    cols: dict[str, list[str]] = {k: [] for k in positions}
    idx = list(positions.items())
    good_lines: list[int] = []
    rejected: list[Problem] = []
    blank: list[int] = []
    last_short = False  # the last record read had too few fields
    start = reader.line_num + 1
    try:
        for row in reader:
            line = start
            start = reader.line_num + 1
            if not row or all(not c.strip() for c in row):
                blank.append(line)
                continue
            last_short = len(row) < width
            if len(row) != width:
                rejected.append(
                    Problem(
                        line, "", "FIELD_COUNT", f"the line has {len(row)} fields; the header has {width}"
                    )
                )
                continue
            good_lines.append(line)
            for k, i in idx:
                cols[k].append(row[i])
    except csv.Error as err:
        raise refuse(
            file_name, f"it looks truncated or damaged near line {reader.line_num} ({err})"
        ) from None
    if last_short and not text.endswith("\n"):
        raise refuse(
            file_name,
            f"it looks truncated: its last line ({rejected[-1].line}) is cut short and has no line end",
        )
    frame = _frame(cols, len(good_lines))
    return RawTable(
        file_name,
        "CSV",
        profile,
        frame,
        np.array(good_lines, dtype=np.int64),
        rejected,
        np.array(blank, dtype=np.int64),
        ignored,
        header=[h.strip() for h in header],
    )


# --- XLSX ------------------------------------------------------------------------------------------------------------


def _cell_text(value: object, profile: Profile) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.strftime(profile.date_format)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.strftime(profile.date_format)
    if isinstance(value, dt.time):
        return value.strftime(profile.time_format)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal):
        # Excel keeps numbers as doubles; repr is the shortest text that reads back as the same double, which
        # for a typed 189.25 is "189.25". Written in the profile's decimal convention so one parser reads all.
        text = repr(value) if isinstance(value, float) else format(value, "f")
        if text.endswith(".0"):
            text = text[:-2]
        return text.replace(".", profile.decimal) if profile.decimal != "." else text
    return str(value)


def read_xlsx(data: bytes, file_name: str, profile: Profile) -> RawTable:
    if not data:
        raise refuse(file_name, "the file is empty")
    if not data.startswith(ZIP_MAGIC):
        raise refuse(file_name, "it is not an XLSX workbook (an XLSX file is a ZIP archive; this one is not)")
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise refuse(file_name, f"the workbook is damaged (part {bad} fails its checksum)")
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except ValidationFailed:
        raise
    except (
        zipfile.BadZipFile,
        InvalidFileException,
        KeyError,
        OSError,
        EOFError,
        ValueError,
        SyntaxError,
    ) as err:
        raise refuse(
            file_name, f"the workbook is truncated or damaged and cannot be opened ({err})"
        ) from None
    try:
        if profile.sheet:
            if profile.sheet not in wb.sheetnames:
                raise refuse(
                    file_name, f"it has no worksheet '{profile.sheet}' (it has: {', '.join(wb.sheetnames)})"
                )
            ws = wb[profile.sheet]
        else:
            ws = wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header_row: tuple[object, ...] | None = None
        header_line = 0
        for header_line, row in enumerate(rows, start=1):  # noqa: B007 (the line number is used below)
            if row and any(v is not None and str(v).strip() for v in row):
                header_row = row
                break
        if header_row is None:
            raise refuse(file_name, "the worksheet is empty")
        header = ["" if v is None else str(v) for v in header_row]
        positions, ignored = _map_header(header, profile, file_name)
        cols: dict[str, list[str]] = {k: [] for k in positions}
        idx = list(positions.items())
        good: list[int] = []
        for line, row in enumerate(rows, start=header_line + 1):
            if not row or all(v is None or (isinstance(v, str) and not v.strip()) for v in row):
                # Excel keeps formatted empty rows; they are not data and are not reported.
                continue
            good.append(line)
            for k, i in idx:
                cols[k].append(_cell_text(row[i] if i < len(row) else None, profile))
    except ValidationFailed:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError, SyntaxError) as err:
        raise refuse(file_name, f"the workbook is truncated or damaged ({err})") from None
    finally:
        wb.close()
    return RawTable(
        file_name,
        "XLSX",
        profile,
        _frame(cols, len(good)),
        np.array(good, dtype=np.int64),
        [],
        ignored_columns=ignored,
        header=[h.strip() for h in header],
    )


def sniff_format(data: bytes, path: Path) -> str:
    """csv, xlsx or fix from the extension, else from the content."""
    ext = path.suffix.lower()
    if ext in (".xlsx", ".xlsm"):
        return "xlsx"
    if ext in (".fix", ".log", ".messages"):
        return "fix"
    if ext in (".csv", ".tsv"):
        return "csv"
    if data.startswith(ZIP_MAGIC):
        return "xlsx"
    head = data[:65536]
    if b"8=FIX" in head:
        return "fix"
    return "csv"
