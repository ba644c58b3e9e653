"""The first pair pass of a run on narrow reads: most records never leave the database in full.

A daily run pairs ~95 % of its records in the first pass (the exact reference). Reading every compared field of a
million records a side is most of a run's time (the drivers pay per value), so that pass runs first on a narrow
read, and only what it leaves is read in full for the engine:

1. **Narrow read**, both sides side by side: the identity, ``where``, key and non-text compared columns exactly as
   the full read gives them (integer units, day numbers), the row's id (``_row``), and ``_x``: the pass's exactly
   compared *text* fields (its ``require`` and the definition's ``compare``) folded in SQL into one value, each
   quoted as an SQL literal (``quote`` / ``quote_nullable``: NULL is the bare word, a string its quoted literal,
   which ends at its closing quote) and joined with commas. Equal ``_x`` therefore means every folded field
   agrees (both missing agree, one missing differs), as :func:`.engine.agree` decides for text.
2. **The pass**, with the engine's own code over the records the engine would see (``where`` applied, records a
   person matched or took apart left out): :func:`.engine._pair_pass` for the key (a key value occurring more
   than once on a side is never paired), :func:`.engine.agree` for every other compared field with its
   tolerance. A pair agrees when its ``_x`` are equal and every other field agrees: exactly the pairs the
   in-memory first pass matches.
3. **Residue read**: every other record (~3-7 %), full columns, by ``_row`` (pushed into the source's query), in
   source order. The run then goes on exactly as before with these frames: the first pass again (its key values
   are untouched: a paired key value had one record on each side and is gone entirely, so duplicates, mismatches
   and what the later passes see are the same), the later passes, breaks, scope.

Each side's residue is read on the narrow read's connection right after the pass, a read of its own as the two
sides' reads always were (a row written in between by someone else is read as it then is).

Not used (the run reads both sides in full, as before) when the first pass is an aggregation, when the definition
has ``coverage`` (whether a left record is covered depends on the whole right side, paired or not), when the
database has no columnar reader (an in-memory SQLite), or when the driver refuses the narrow query (logged):
:func:`first_pass` returns None. ``tests/test_recon_sql_pass.py`` runs definitions both ways and compares all.

Measured at 200,000 records a side on the shared 2-core machine (min of several, same minute):

- the whole exact-reference pass as a join in SQL (tolerances in SQL, duplicate keys counted there) took longer
  than reading both sides in full: SQLite 2.7-5.8 s against 1.8 s (no hash join: it sorts or indexes the
  materialised sides), PostgreSQL 4.2-6.7 s against 3.1-4.1 s (duplicate counts and a join over wide rows);
- folding numbers and dates into ``_x`` too (units and day numbers written as text in SQL) cost more than reading
  them: SQLite 0.96 s against 0.75 s for the full read of one side; folding text only: 1.05 s against 1.63 s.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
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

log = logging.getLogger(__name__)

# The narrow first pass where a definition allows it (tests switch it off to compare both ways).
ENABLED = True

_COLUMNAR_KIND = {"t": "text", "d": "days", "i": "int"}


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
    """Text compared exactly, a text column on both sides: folded into ``_x``. Numbers and dates are read as they
    are (measured: writing them as text in SQL costs the database more than the driver spends on the column)."""
    return spec.type == "text" and all(
        SOURCES[side.source].columns[col] == "t"
        for side, col in ((cfg.left, spec.left), (cfg.right, spec.right))
    )


def _fold(specs: list[tuple[FieldSpec, str]], pg: bool) -> str:
    """The SQL text of ``_x``: each folded field's value quoted as an SQL literal (NULL as the bare word), joined
    with commas: a quoted literal ends at its closing quote, so equal ``_x`` means equal values field by field."""
    if not specs:
        return "''"
    quote = "quote_nullable(q.{})" if pg else "quote(CAST(q.{} AS TEXT))"
    return " || ',' || ".join(quote.format(col) for _spec, col in specs)


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
            return _read_narrow(readers[i], src, as_of, _narrow_columns(cfg, p, which), _fold(specs, pg), pg)

        try:
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="recon-narrow") as pool:
                raw = list(pool.map(narrow, [0, 1]))
        except columnar.DRIVER_ERRORS as err:  # a query the driver refuses: the full read still answers
            log.warning(
                "recon: narrow first pass not run (%s: %s); reading both sides in full", type(err), err
            )
            return None
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
