"""The first pair pass of a run on narrow reads: most records never leave the database in full.

A daily run pairs ~95 % of the records in its first pass (the exact reference). Reading every compared field of a
million records on each side is most of a run's time (the drivers pay per value), so that pass runs first on a
narrow read, and only what it leaves is read in full for the engine:

1. **Narrow read**, both sides side by side: the identity, ``where``, key and tolerance-compared columns as the
   full read gives them, the row's id (``_row``) and ``_x``: every *exactly* compared field of the pass (its
   ``require`` and the definition's ``compare``) folded in SQL into one text, each value written exactly as the
   engine would hold it: text quoted (``quote`` / ``quote_nullable``: NULL and every string stay apart), numbers as
   the integer units of their scale (PostgreSQL: the very ``CAST(x * 10^s AS BIGINT)`` the full read uses; SQLite:
   ``ROUND`` of the double times 10^s, the arithmetic the columnar read does in numpy), dates as day numbers
   (PostgreSQL) or their ISO text (SQLite). Equal ``_x`` therefore means every exact field agrees (both missing
   agree, one missing differs), as :func:`.engine.agree` decides it.
2. **The pass**, with the engine's own code (:func:`.engine._pair_pass` for key uniqueness: a key value occurring
   more than once on a side among the records the run matches is never paired; :func:`.engine.agree` for the
   abs/rel/days tolerances) over the records the engine would see: ``where`` applied, records a person matched or
   took apart left out. A pair agrees when its ``_x`` are equal and every tolerance field agrees.
3. **Residue read**: every other record (~3-7 %), full columns, by ``_row``, in source order. The run then goes on
   exactly as before with these frames: the first pass again (its key values are untouched: a paired key value had
   one record on each side and is gone entirely, so duplicates, mismatches and what the later passes see are the
   same), the later passes, breaks, scope.

Each side's residue is read on the narrow read's connection right after the pass, a read of its own as the two
sides' reads always were (a row written in between by someone else is read as it then is).

The pass is *sound*, not necessarily complete: a value SQL cannot fold exactly (a SQLite number beyond a double's
exact integers, text in a date column that is not an ISO date) makes its record's ``_x`` NULL, so the record is not
paired here and the engine pairs it from the residue. What it pairs is exactly what the in-memory first pass would
match, so the run's pairs, breaks and counts are the same either way (``tests/test_recon_sql_pass.py``).

Not used (the run reads both sides in full, as before) when the first pass is an aggregation, when the definition
has ``coverage`` (whether a left record is covered depends on the whole right side, paired or not), or when the
database has no columnar reader (an in-memory SQLite): :func:`first_pass` returns None.

Why not the whole join in SQL: measured at 200,000 records a side, joining the sides in the database with the
tolerances in SQL took longer than reading both sides in full (SQLite: 2.7-5.8 s against 1.8 s, it has no hash
join and sorts or indexes the materialised sides; PostgreSQL: 4.2-6.7 s against 3.1-4.1 s, the duplicate-key counts
and the join over wide rows). The narrow read took 0.92 s against 1.55 s (SQLite), 1.46 s against 1.88 s
(PostgreSQL) in the same minute.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import columnar
from ..db import Database
from .config import FieldSpec, ReconConfig, SideSpec
from .engine import FREE, _pair_pass, _Side, agree
from .sources import KIND_SCALE, SOURCES, Source, _apply_where, _identity, _pg_expr, _read_columnar, prepare

ENABLED = (
    True  # the narrow first pass where a definition allows it (tests switch it off to compare both ways)
)

_COLUMNAR_KIND = {"t": "text", "d": "days", "i": "int"}
_EXACT_DOUBLE = 9007199254740992.0  # 2^53: beyond it a SQLite double no longer holds every integer


@dataclass
class FirstPass:
    """What the narrow first pass did: the pairs it made (identities, left order) and the rest of each side."""

    pass_name: str
    left_ids: pa.Array
    right_ids: pa.Array
    left: pd.DataFrame  # the records it did not pair, full columns, as read_sources gives them
    right: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def pairs(self) -> int:
        return len(self.left_ids)


@dataclass(frozen=True)
class _Plan:
    exact: tuple[FieldSpec, ...]  # folded into _x in SQL
    loose: tuple[FieldSpec, ...]  # read and compared with their tolerance by the engine
    config: ReconConfig  # the pass alone: its keys and the loose fields


def plan(cfg: ReconConfig) -> _Plan | None:
    """How the first pass of ``cfg`` runs narrow, or None when it cannot (see the module docstring)."""
    if not cfg.passes or cfg.passes[0].kind != "pair" or cfg.coverage:
        return None
    first = cfg.passes[0]
    exact: list[FieldSpec] = []
    loose: list[FieldSpec] = []
    for name in dict.fromkeys([*first.require, *cfg.compare]):
        if name in first.keys:
            continue  # paired on it: equal, and present, on both sides
        spec = cfg.fields[name]
        (exact if _foldable(cfg, spec) else loose).append(spec)
    fields = {n: cfg.fields[n] for n in dict.fromkeys([*first.keys, *(f.name for f in loose)])}
    alone = replace(
        cfg,
        fields=fields,
        compare=tuple(f.name for f in loose),
        passes=(replace(first, require=(), duplicates="skip"),),
        coverage=(),
    )
    return _Plan(tuple(exact), tuple(loose), alone)


def _foldable(cfg: ReconConfig, spec: FieldSpec) -> bool:
    """Whether a compared field's agreement is plain equality of what SQL can write exactly on both sides."""
    if spec.type == "text":
        return True
    if spec.tolerance.kind != "exact":
        return False
    for side, col in ((cfg.left, spec.left), (cfg.right, spec.right)):
        kind = SOURCES[side.source].columns[col]
        if spec.numeric and (kind not in KIND_SCALE or (spec.scale or 0) != KIND_SCALE[kind]):
            return False  # rescaled in pandas: compared there
    return True


def _fold(src: Source, specs: list[tuple[FieldSpec, str]], pg: bool) -> str:
    """The SQL text of ``_x``: each exact field's value as the engine holds it; NULL when one cannot be written
    exactly (the record is then left to the engine)."""
    if not specs:
        return "''"
    parts = []
    for _spec, col in specs:
        kind = src.columns[col]
        c = f"q.{col}"
        if pg:
            if kind == "t":
                parts.append(f"quote_nullable({c})")
            elif kind == "d":
                parts.append(f"COALESCE(CAST(({c} - DATE '1970-01-01') AS TEXT), 'N')")
            elif kind in ("q", "p", "m"):
                parts.append(f"COALESCE(CAST(CAST({c} * {10 ** KIND_SCALE[kind]} AS BIGINT) AS TEXT), 'N')")
            else:
                parts.append(f"COALESCE(CAST({c} AS TEXT), 'N')")
        elif kind == "t":
            parts.append(f"quote(CAST({c} AS TEXT))")
        elif kind == "d":
            day = f"substr(CAST({c} AS TEXT), 1, 10)"
            # Only a valid ISO date is written; the columnar read refuses anything else, so must the engine.
            parts.append(f"(CASE WHEN {c} IS NULL THEN 'N' WHEN date({day}) IS {day} THEN {day} END)")
        elif kind in ("q", "p", "m"):
            x = f"CAST({c} AS REAL) * {10 ** KIND_SCALE[kind]}.0"
            parts.append(
                f"(CASE WHEN {c} IS NULL THEN 'N' WHEN abs({x}) < {_EXACT_DOUBLE} "
                f"THEN CAST(CAST(ROUND({x}) AS INTEGER) AS TEXT) END)"
            )
        else:
            parts.append(f"COALESCE(CAST(CAST({c} AS INTEGER) AS TEXT), 'N')")
    return " || ',' || ".join(parts)


def _narrow_columns(cfg: ReconConfig, p: _Plan, which: str) -> list[str]:
    side = cfg.left if which == "left" else cfg.right
    src = SOURCES[side.source]
    cols = [f.left if which == "left" else f.right for f in p.config.fields.values()]
    cols += list(side.where) + list(side.identity or src.identity)
    return [c for c in src.columns if c in set(cols)]


def _read_narrow(
    r: columnar.Reader, src: Source, as_of: dt.date | None, cols: list[str], fold: str, pg: bool
) -> pd.DataFrame:
    sql, params = src.sql(as_of)
    if pg:
        outer = f"SELECT {', '.join(_pg_expr(src, c) for c in cols)}, q._row, {fold} AS _x FROM ({sql}) q"
        kinds = {c: "text" if src.columns[c] == "t" else "int" for c in cols}
        return r.frame(outer, params, {**kinds, "_row": "int", "_x": "text"})
    kinds = {c: _COLUMNAR_KIND.get(src.columns[c]) or f"units:{KIND_SCALE[src.columns[c]]}" for c in cols}
    inner = f"SELECT q.*, {fold} AS _x FROM ({sql}) q"
    return r.frame(inner, params, {**kinds, "_row": "int", "_x": "text"})


def _read_rows(
    r: columnar.Reader, src: Source, as_of: dt.date | None, cols: list[str], rows: np.ndarray, pg: bool
) -> pd.DataFrame:
    """Some rows of a source (by ``_row``), full columns, in source order: what read_source gives for them."""
    listed = (
        "SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(:_rows AS json))"
        if pg
        else "SELECT value FROM json_each(:_rows)"
    )
    sql, params = src.sql(as_of, listed)
    return _read_columnar(r, src, sql, {**params, "_rows": json.dumps(rows.tolist())}, cols, pg)


def _flat(values: pd.Series) -> pa.Array:
    """A text column as one Arrow large_string array (no Python string per value where it is Arrow already)."""
    arr = values.array
    if isinstance(arr, pd.arrays.ArrowStringArray):
        out = pa.array(arr)
        out = out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out
        return out.cast(pa.large_string())
    return pa.array(
        [None if v is None or v is pd.NA else str(v) for v in values.tolist()], type=pa.large_string()
    )


def first_pass(
    db: Database,
    cfg: ReconConfig,
    as_of: dt.date | None,
    wanted: tuple[list[str], list[str]],
    exclude: tuple[set[str], set[str]],
) -> FirstPass | None:
    """Run the first pass narrow (module docstring); None where it does not apply (then read both sides in full).

    ``wanted``: the columns the full read of each side takes; ``exclude``: the identities of records the engine
    does not see on each side (matched by a person, or taken apart), which are therefore not counted for key
    uniqueness here either; they stay in the residue, where the run deals with them as before."""
    p = plan(cfg) if ENABLED else None
    if p is None:
        return None
    pg = db.is_postgres
    sides: list[tuple[SideSpec, str]] = [(cfg.left, "left"), (cfg.right, "right")]
    readers = [columnar.Reader(db), columnar.Reader(db)]
    try:
        if any(r.via != "adbc" for r in readers):
            return None
        timings: dict[str, float] = {}
        t = time.perf_counter()

        def narrow(i: int) -> pd.DataFrame:
            side, which = sides[i]
            src = SOURCES[side.source]
            specs = [(f, f.left if which == "left" else f.right) for f in p.exact]
            return _read_narrow(
                readers[i], src, as_of, _narrow_columns(cfg, p, which), _fold(src, specs, pg), pg
            )

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="recon-narrow") as pool:
            raw = list(pool.map(narrow, [0, 1]))
        timings["read_narrow"] = time.perf_counter() - t
        t = time.perf_counter()
        frames, inputs, engine_frames = [], [], []
        for (side, which), frame, excluded in zip(sides, raw, exclude, strict=True):
            frame = _apply_where(frame, side)
            ids = _identity(frame, side.identity or SOURCES[side.source].identity)
            keep = ~ids.isin(list(excluded)).to_numpy(dtype=bool) if excluded else np.ones(len(frame), bool)
            pos = np.flatnonzero(keep)
            eng = prepare(frame, replace(side, where={}), p.config, which)
            frames.append((frame, ids))
            inputs.append(pos)
            engine_frames.append(eng if len(pos) == len(eng) else eng.iloc[pos].reset_index(drop=True))
        L, R = _Side(engine_frames[0], p.config, "left"), _Side(engine_frames[1], p.config, "right")
        L.other, R.other = R, L
        state_l, state_r = np.full(L.n, FREE, np.int8), np.full(R.n, FREE, np.int8)
        pl, pr, _ = _pair_pass(p.config.passes[0], L, R, state_l, state_r, p.config)
        pl_read, pr_read = inputs[0][pl], inputs[1][pr]  # positions among the records read
        xl, xr = _flat(frames[0][0]["_x"]), _flat(frames[1][0]["_x"])
        same = pc.equal(xl.take(pa.array(pl_read)), xr.take(pa.array(pr_read)))
        ok = np.asarray(pc.fill_null(same, False).to_numpy(zero_copy_only=False), dtype=bool)
        for spec in p.loose:
            ok &= agree(spec, L.col(spec.name), R.col(spec.name), pl, pr)
        pl_read, pr_read = pl_read[ok], pr_read[ok]
        left_ids = _flat(frames[0][1]).take(pa.array(pl_read))
        right_ids = _flat(frames[1][1]).take(pa.array(pr_read))
        rest = []
        for (frame, _ids), paired in zip(frames, (pl_read, pr_read), strict=True):
            left_over = np.ones(len(frame), dtype=bool)
            left_over[paired] = False
            rest.append(frame["_row"].to_numpy(dtype=np.int64)[left_over])
        timings["match_narrow"] = time.perf_counter() - t
        t = time.perf_counter()

        def residue(i: int) -> pd.DataFrame:
            side, _which = sides[i]
            return _read_rows(readers[i], SOURCES[side.source], as_of, wanted[i], rest[i], pg)

        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="recon-residue") as pool:
            left, right = pool.map(residue, [0, 1])
        timings["read_residue"] = time.perf_counter() - t
        return FirstPass(cfg.passes[0].name, left_ids, right_ids, left, right, timings)
    finally:
        for r in readers:
            r.close()
