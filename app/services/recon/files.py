"""Ad hoc reconciliation of two files, as analysts do every day: CSV or XLSX in, a break report out.

``reconcile_files(left, right, keys=["trade_id"], compare=["quantity", "amount:abs=0.01", "value_date:days=1"])``
runs the same engine as the recon definitions, with one pass on the key columns. Every cell is read as text and
typed per compared column: a column with ``abs=``/``rel=`` is a number, with ``days=`` a date; a column without
tolerance is compared as a number when every value on both sides is one (so ``0.30`` equals ``0.3``, and
``0.1 + 0.2`` written out as ``0.3`` is exactly ``0.3``), else as text. Numbers become exact integers of the
column's largest scale; nothing goes through a float.

The summary counts exactly: ``matched`` (keys whose records agree within tolerance), ``mismatched`` (keys on both
sides that differ beyond tolerance), ``missing_left`` (keys only in RIGHT), ``missing_right`` (keys only in LEFT)
and ``duplicate_keys`` (distinct key values occurring more than once on a side; their records, on both sides, are
counted in none of the other four and listed in the report for a person to sort out).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..capture.units import OK, PROBLEM_TEXT, parse_units
from ..errors import ValidationFailed
from .config import FieldSpec, PassSpec, ReconConfig, SideSpec, Tolerance, parse_tolerance
from .engine import reconcile

READABLE = (".csv", ".txt", ".xlsx", ".xlsm")
WRITABLE = (".csv", ".xlsx")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$")
_MAX_SCALE = 18  # int64 holds 18 digits; a value too large for its column's scale is reported
_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass
class FilesResult:
    summary: dict[str, Any]
    report: pd.DataFrame
    out: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _label(which: str, path: Path) -> str:
    return f"{which} file {path.name}"


def read_table(path: str | Path, which: str = "LEFT") -> pd.DataFrame:
    """Every cell as text ('' for empty), header names stripped; a clear error for what cannot be read."""
    p = Path(path)
    if not p.exists():
        raise ValidationFailed(f"{_label(which, p)}: no such file ({p}).")
    if p.suffix.lower() not in READABLE:
        raise ValidationFailed(
            f"{_label(which, p)}: cannot read {p.suffix or 'files without a suffix'}; give CSV or XLSX."
        )
    try:
        if p.suffix.lower() in (".xlsx", ".xlsm"):
            frame = pd.read_excel(p, dtype=str, keep_default_na=False, na_filter=False)
        else:
            frame = pd.read_csv(
                p,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                encoding="utf-8-sig",
                skipinitialspace=False,
            )
    except pd.errors.EmptyDataError:
        raise ValidationFailed(f"{_label(which, p)}: the file is empty (no header line).") from None
    except UnicodeDecodeError as err:
        raise ValidationFailed(
            f"{_label(which, p)}: not UTF-8 text ({err.reason} at byte {err.start})."
        ) from None
    except Exception as err:  # openpyxl/zip/csv parser errors: the user needs the file name and the reason
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValidationFailed(f"{_label(which, p)}: unreadable ({first}).") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.fillna("").astype(str)


def parse_compare(spec: str) -> tuple[str, Tolerance]:
    """``amount:abs=0.01`` -> ('amount', Tolerance(abs, 0.01)); ``name`` -> exact."""
    col, sep, tol = spec.rpartition(":") if re.search(r":(abs|rel|days)\s*=", spec, re.I) else (spec, "", "")
    col = col.strip()
    if not col:
        raise ValidationFailed(
            f"--compare {spec!r}: name the column (COL or COL:abs=X, COL:rel=X, COL:days=N)."
        )
    if not sep and ":" in spec:
        raise ValidationFailed(
            f"--compare {spec!r}: bad tolerance {spec.partition(':')[2]!r}; write abs=X, rel=X or days=N "
            "(e.g. amount:abs=0.01)."
        )
    try:
        return col, parse_tolerance(tol, f"--compare {spec}")
    except ValidationFailed as err:
        raise ValidationFailed(str(err)) from None


def _decimals(values: np.ndarray) -> int:
    s = pd.Series(values, dtype=object).astype(str).str.strip()
    frac = s.str.partition(".")[2]
    return int(frac.str.len().max()) if len(frac) else 0


def _as_number(col: str, values: dict[str, tuple[np.ndarray, Path]], scale: int) -> dict[str, pd.Series]:
    out = {}
    for which, (vals, path) in values.items():
        units, problem = parse_units(vals, scale)
        empty = np.char.strip(vals.astype(str)) == ""
        bad = (problem != OK) & ~empty
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationFailed(
                f"{_label(which, path)}, line {i + 2}, column {col!r}: {vals[i]!r} "
                f"{PROBLEM_TEXT.get(int(problem[i]), 'is not a number')}."
            )
        arr = pd.array(units, dtype="Int64")
        arr[empty] = pd.NA
        out[which] = pd.Series(arr)
    return out


def _as_date(col: str, values: dict[str, tuple[np.ndarray, Path]]) -> dict[str, pd.Series]:
    out = {}
    for which, (vals, path) in values.items():
        s = pd.Series(vals, dtype=object).astype(str).str.strip()
        empty = (s == "").to_numpy()
        parsed = pd.to_datetime(s.where(~empty, None), errors="coerce", format="mixed", dayfirst=False)
        bad = parsed.isna().to_numpy() & ~empty
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationFailed(
                f"{_label(which, path)}, line {i + 2}, column {col!r}: {vals[i]!r} is not a date (use YYYY-MM-DD)."
            )
        days = parsed.to_numpy().astype("datetime64[D]")
        arr = pd.array(np.where(empty, 0, (days - _EPOCH).astype(np.int64)), dtype="Int64")
        arr[empty] = pd.NA
        out[which] = pd.Series(arr)
    return out


def _all_numbers(vals: np.ndarray) -> bool:
    s = pd.Series(vals, dtype=object).astype(str)
    s = s[s.str.strip() != ""]
    return bool(len(s)) and bool(s.str.match(_NUMBER).all())


def reconcile_files(
    left: str | Path,
    right: str | Path,
    keys: list[str],
    compare: list[str] | None = None,
    out: str | Path | None = None,
) -> FilesResult:
    """Compare two files on ``keys``; ``compare`` items are ``COL``, ``COL:abs=X``, ``COL:rel=X`` or ``COL:days=N``
    (default: every column both files have besides the keys, exactly). Writes the break report to ``out``."""
    started = time.perf_counter()
    lp, rp = Path(left), Path(right)
    if not keys:
        raise ValidationFailed("Name at least one key column (--key COL).")
    if out is not None and Path(out).suffix.lower() not in WRITABLE:
        raise ValidationFailed(f"--out {out}: the break report is written as .csv or .xlsx.")
    specs = [parse_compare(c) for c in compare or []]
    lf, rf = read_table(lp, "LEFT"), read_table(rp, "RIGHT")
    for which, frame, path in (("LEFT", lf, lp), ("RIGHT", rf, rp)):
        for col in keys + [c for c, _ in specs]:
            if col not in frame.columns:
                raise ValidationFailed(
                    f"{_label(which, path)} has no column {col!r} (its columns: {', '.join(frame.columns)})."
                )
    if not specs:
        specs = [(c, Tolerance()) for c in lf.columns if c in set(rf.columns) and c not in keys]
    if len(set(keys)) != len(keys):
        raise ValidationFailed("A key column is named twice.")
    t_read = time.perf_counter() - started

    fields: dict[str, FieldSpec] = {}
    lcols: dict[str, pd.Series] = {}
    rcols: dict[str, pd.Series] = {}
    names: dict[str, str] = {}  # field name -> column
    for i, k in enumerate(keys):
        name = f"k{i}"
        fields[name] = FieldSpec(name, k, k, "text")
        lcols[name] = lf[k].str.strip()
        rcols[name] = rf[k].str.strip()
        names[name] = k
    for i, (col, tol) in enumerate(specs):
        name = f"c{i}"
        names[name] = col
        values = {"LEFT": (lf[col].to_numpy(dtype=object), lp), "RIGHT": (rf[col].to_numpy(dtype=object), rp)}
        numeric = tol.kind in ("abs", "rel") or (
            tol.kind == "exact" and _all_numbers(values["LEFT"][0]) and _all_numbers(values["RIGHT"][0])
        )
        scale = 0
        if numeric:
            scale = max(_decimals(values["LEFT"][0]), _decimals(values["RIGHT"][0]))
            if tol.kind == "abs":
                scale = max(scale, -tol.value.normalize().as_tuple().exponent)
            if scale > _MAX_SCALE:
                if tol.kind != "exact":
                    raise ValidationFailed(
                        f"column {col!r}: more than {_MAX_SCALE} decimals; compare it exactly."
                    )
                numeric = False  # compared as written
        if tol.kind == "days":
            typed = _as_date(col, values)
            fields[name] = FieldSpec(name, col, col, "date", tol)
        elif numeric:
            typed = _as_number(col, values, scale)
            fields[name] = FieldSpec(name, col, col, "number", tol, scale=scale)
        else:
            typed = {w: pd.Series(v[0], dtype=object).str.strip() for w, v in values.items()}
            fields[name] = FieldSpec(name, col, col, "text", tol)
        lcols[name], rcols[name] = typed["LEFT"], typed["RIGHT"]
    key_names = tuple(f"k{i}" for i in range(len(keys)))
    compare_names = tuple(f"c{i}" for i in range(len(specs)))
    cfg = ReconConfig(
        left=SideSpec(str(lp)),
        right=SideSpec(str(rp)),
        fields=fields,
        key=key_names,
        compare=compare_names,
        passes=(PassSpec("key", "pair", key_names, (), "report"),),
    )
    lframe = pd.DataFrame(
        {"_id": (np.arange(len(lf)) + 2).astype(str), **{k: v.to_numpy() for k, v in lcols.items()}}
    )
    rframe = pd.DataFrame(
        {"_id": (np.arange(len(rf)) + 2).astype(str), **{k: v.to_numpy() for k, v in rcols.items()}}
    )
    for name, f in fields.items():
        if f.type != "text":
            lframe[name] = pd.array(lcols[name].to_numpy(), dtype="Int64")
            rframe[name] = pd.array(rcols[name].to_numpy(), dtype="Int64")
    t = time.perf_counter()
    result = reconcile(lframe, rframe, cfg)
    t_match = time.perf_counter() - t
    report = _report(result, lf, rf, keys, [c for c, _ in specs], names)
    summary = {
        "left_rows": int(len(lf)),
        "right_rows": int(len(rf)),
        "keys": keys,
        "compare": {c: tol.text for c, tol in specs},
        "matched": int(len(result.pair_left)),
        "mismatched": int(len(result.mismatch_left)),
        "missing_left": int(len(result.missing_right)),
        "missing_right": int(len(result.missing_left)),
        "duplicate_keys": int(len(result.duplicates)),
    }
    out_path = None
    if out is not None:
        out_path = Path(out)
        try:
            if out_path.suffix.lower() == ".xlsx":
                report.to_excel(out_path, index=False, sheet_name="breaks")
            else:
                report.to_csv(out_path, index=False)
        except OSError as err:
            raise ValidationFailed(f"--out {out}: cannot write the break report ({err.strerror}).") from None
        summary["out"] = str(out_path)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return FilesResult(summary, report, out_path, {"read": t_read, "match": t_match})


def _report(
    result: Any, lf: pd.DataFrame, rf: pd.DataFrame, keys: list[str], cols: list[str], names: dict[str, str]
) -> pd.DataFrame:
    """One row per break: status, the key, the differing columns, line numbers, both values of every column."""
    rows: list[dict[str, Any]] = []
    compare = list(result.config.compare)

    def values(prefix: str, frame: pd.DataFrame, pos: int | None) -> dict[str, Any]:
        return {f"{prefix}_{c}": (frame.iloc[pos][c] if pos is not None else "") for c in cols}

    def key_of(frame: pd.DataFrame, pos: int) -> dict[str, Any]:
        return {k: frame.iloc[pos][k].strip() for k in keys}

    for k in range(len(result.mismatch_left)):
        lp, rp = int(result.mismatch_left[k]), int(result.mismatch_right[k])
        diff = [names[compare[j]] for j in np.flatnonzero(result.mismatch_fields[k]).tolist()]
        rows.append(
            {
                "status": "MISMATCH",
                **key_of(lf, lp),
                "fields": ", ".join(diff),
                "left_line": lp + 2,
                "right_line": rp + 2,
                **values("left", lf, lp),
                **values("right", rf, rp),
            }
        )
    for lp in result.missing_left.tolist():
        rows.append(
            {
                "status": "MISSING_RIGHT",
                **key_of(lf, lp),
                "fields": "",
                "left_line": lp + 2,
                "right_line": "",
                **values("left", lf, lp),
                **values("right", rf, None),
            }
        )
    for rp in result.missing_right.tolist():
        rows.append(
            {
                "status": "MISSING_LEFT",
                **key_of(rf, rp),
                "fields": "",
                "left_line": "",
                "right_line": rp + 2,
                **values("left", lf, None),
                **values("right", rf, rp),
            }
        )
    for g in result.duplicates:
        first = (lf, int(g.left[0])) if len(g.left) else (rf, int(g.right[0]))
        rows.append(
            {
                "status": "DUPLICATE_KEY",
                **key_of(*first),
                "fields": f"{len(g.left)} on the left, {len(g.right)} on the right",
                "left_line": " ".join(str(int(p) + 2) for p in g.left),
                "right_line": " ".join(str(int(p) + 2) for p in g.right),
                **values("left", lf, int(g.left[0]) if len(g.left) else None),
                **values("right", rf, int(g.right[0]) if len(g.right) else None),
            }
        )
    columns = [
        "status",
        *keys,
        "fields",
        "left_line",
        "right_line",
        *[f"{p}_{c}" for c in cols for p in ("left", "right")],
    ]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["status", *keys], kind="stable").reset_index(drop=True)
