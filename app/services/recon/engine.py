"""The matcher: two frames and a definition's config in, matches and breaks out. No Qt, no database.

Each side is a DataFrame with an ``_id`` column (the record's stable identity, used in matches, breaks and their
fingerprints) and one column per config field, held exactly: numbers as nullable ``Int64`` integers of the field's
scale (money in units of 1e-4 and so on, see :mod:`.config`), dates as nullable ``Int64`` day numbers (or
``datetime64``, converted here), text as strings with a missing value for missing. Nothing is ever a float.

How a pass runs, vectorised: every field used as a key or compared as text is factorised **once**, both sides
together, into integer codes shared by the two sides (equal codes, equal values), and every pass reuses them; the
codes of a multi-column key are combined into one integer, and ``np.bincount`` counts each key value per side. A key
value with exactly one record on each side is a pair (found through an array indexed by code, no join); a key value
with more than one record on a side is never paired by row order. Compared fields are checked column by column over
all pairs at once, integers against integers (text through its codes). Aggregation sums the many side per code with
exact int64 arithmetic. Break records (what a person reads) are built only for the few records that break.

Records whose key is duplicated in a ``duplicates: report`` pass are held aside; an aggregation later may still
account for them (several bank lines quoting one settlement). What is still held at the end is one DUPLICATE_KEY
break per key value, listing every record on both sides with that value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .config import FieldSpec, PassSpec, ReconConfig

FREE, MATCHED, PAIRED, HELD = 0, 1, 2, 3
_EPOCH = np.datetime64("1970-01-01", "D")
_COMBINE_LIMIT = 2**62


# --------------------------------------------------------------------------------------------------------------------
# Column access
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class _Col:
    """A field's values on one side as numpy arrays: ``values`` (int64) and ``null``.

    Text is held as int64 codes into ``labels`` (the distinct values of both sides together), so that equal codes
    mean equal text on either side and comparing text is comparing integers."""

    values: np.ndarray
    null: np.ndarray
    labels: Any = None


def _numbers(frame: pd.DataFrame, spec: FieldSpec) -> _Col:
    s = frame[spec.name]
    if spec.type == "date" and (pd.api.types.is_datetime64_any_dtype(s) or s.dtype == object):
        days = pd.to_datetime(s, errors="raise").to_numpy().astype("datetime64[D]")
        null = np.isnat(days)
        vals = np.where(null, 0, (days - _EPOCH).astype(np.int64))
        return _Col(vals.astype(np.int64), null)
    null = pd.isna(s).to_numpy()
    if isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        if s.dtype.kind == "f":
            raise TypeError(
                f"field {spec.name!r} holds floats; numbers must be exact integers of their scale"
            )
        vals = s.to_numpy(dtype=np.int64, na_value=0)
    else:
        if s.dtype.kind == "f":
            raise TypeError(
                f"field {spec.name!r} holds floats; numbers must be exact integers of their scale"
            )
        vals = np.where(null, 0, s.to_numpy()).astype(np.int64)
    return _Col(vals, null)


class _Side:
    """One side's frame with lazily extracted columns (text columns are coded jointly with the other side)."""

    def __init__(self, frame: pd.DataFrame, config: ReconConfig, name: str) -> None:
        missing = [c for c in ["_id", *config.fields] if c not in frame.columns]
        if missing:
            raise KeyError(f"the {name} frame lacks the columns {missing}")
        self.frame = (
            frame
            if isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
            else (frame.reset_index(drop=True))
        )
        self.config = config
        self.name = name
        self.n = len(frame)
        self.other: _Side | None = None
        self._ids: np.ndarray | None = None
        self._whole_ids: pa.Array | None = None
        self._cols: dict[str, _Col] = {}
        self._joint: dict[str, tuple[np.ndarray, int]] = {}

    @property
    def ids(self) -> np.ndarray:
        """Every record's identity as an object array (built once, when first asked for)."""
        if self._ids is None:
            self._ids = np.asarray(self.frame["_id"].to_numpy(dtype=object, na_value=None), dtype=object)
        return self._ids

    def ids_at(self, pos: np.ndarray) -> np.ndarray:
        """The identities of some records (without building every record's identity)."""
        if self._ids is not None:
            return self._ids[pos]
        whole = self._arrow_ids()
        if whole is not None:
            return np.asarray(whole.take(pa.array(np.asarray(pos, dtype=np.int64))).to_pylist(), dtype=object)
        return np.asarray(
            self.frame["_id"].array.take(pos).to_numpy(dtype=object, na_value=None), dtype=object
        )

    def ids_arrow(self, pos: np.ndarray) -> pa.Array | None:
        """The identities of some records as an Arrow string array, or None when the identities are not held as
        Arrow strings (then use :meth:`ids_at`). No Python object per record."""
        whole = self._arrow_ids()
        if whole is None:
            return None
        return whole.take(pa.array(np.asarray(pos, dtype=np.int64)))

    def _arrow_ids(self) -> pa.Array | None:
        """The identities as one contiguous Arrow string array (made once), or None when they are not Arrow
        strings. A take from a chunked array first joins its chunks, at every take: a run's break records take a
        thousand identities at a time from a million, and that cost 9 ms a take."""
        if self._whole_ids is None:
            arr = self.frame["_id"].array
            if not isinstance(arr, pd.arrays.ArrowStringArray):
                return None
            data = pa.array(arr)  # the Arrow data itself (``__arrow_array__``), no copy
            self._whole_ids = data.combine_chunks() if isinstance(data, pa.ChunkedArray) else data
        return self._whole_ids

    def col(self, name: str) -> _Col:
        if name not in self._cols:
            spec = self.config.fields[name]
            if spec.type == "text":
                _code_text(self, self.other, name)
            else:
                self._cols[name] = _numbers(self.frame, spec)
        return self._cols[name]

    def joint(self, name: str) -> tuple[np.ndarray, int]:
        """(codes, number of distinct values) of a field, shared with the other side; -1 where missing."""
        if name not in self._joint:
            spec = self.config.fields[name]
            if spec.type == "text":
                c = self.col(name)
                self._joint[name] = (c.values, len(c.labels))
            else:
                _code_numbers(self, self.other, name)
        return self._joint[name]


def _sides(left: _Side, right: _Side, name: str) -> tuple[_Side, _Side]:
    return (left, right) if left.name == "left" else (right, left)


class _Labels:
    """The distinct values of a text field (both sides), as a numpy object array or an Arrow array."""

    def __init__(self, values: Any) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def take(self, idx: np.ndarray) -> list[Any]:
        if not isinstance(self.values, np.ndarray):
            if len(self.values) > 100_000:  # many distinct values (references): take only what is asked for
                return self.values.take(pa.array(np.asarray(idx, dtype=np.int64))).to_pylist()
            self.values = np.asarray(self.values.to_pylist(), dtype=object)
        return self.values[idx].tolist()


def _arrow_text(s: pd.Series) -> bool:
    dt = s.dtype
    if isinstance(dt, pd.StringDtype):
        return dt.storage == "pyarrow"
    return (
        isinstance(dt, pd.ArrowDtype)
        and pa.types.is_string(dt.pyarrow_dtype)
        or (isinstance(dt, pd.ArrowDtype) and pa.types.is_large_string(dt.pyarrow_dtype))
    )


def _code_text(a: _Side, b: _Side | None, name: str) -> None:
    """Factorise a text field over both sides at once: one hash pass, codes shared by the two sides."""
    assert b is not None
    left, right = _sides(a, b, name)
    ls, rs = left.frame[name], right.frame[name]
    if _arrow_text(ls) and _arrow_text(rs):
        # Arrow strings: dictionary-encode in Arrow, no Python string objects at all.
        chunks: list[Any] = []
        for s in (ls, rs):
            arr = pa.array(s.array).cast(pa.large_string())
            chunks.extend(arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr])
        encoded = pc.dictionary_encode(pa.chunked_array(chunks, type=pa.large_string()).combine_chunks())
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        labels = _Labels(encoded.dictionary)
    else:
        values = np.concatenate(
            [ls.to_numpy(dtype=object, na_value=None), rs.to_numpy(dtype=object, na_value=None)]
        )
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        codes = codes.astype(np.int64, copy=False)
        labels = _Labels(np.asarray(uniques, dtype=object))
    null = codes < 0
    n = left.n
    left._cols[name] = _Col(codes[:n], null[:n], labels)
    right._cols[name] = _Col(codes[n:], null[n:], labels)


def _code_numbers(a: _Side, b: _Side | None, name: str) -> None:
    """Codes of a numeric field used as a key, shared by both sides (-1 where missing)."""
    assert b is not None
    left, right = _sides(a, b, name)
    lc, rc = left.col(name), right.col(name)
    codes, uniq = pd.factorize(np.concatenate([lc.values, rc.values]))
    codes = codes.astype(np.int64, copy=False)
    codes[np.concatenate([lc.null, rc.null])] = -1
    n = left.n
    left._joint[name] = (codes[:n], len(uniq))
    right._joint[name] = (codes[n:], len(uniq))


# --------------------------------------------------------------------------------------------------------------------
# Keys and comparisons
# --------------------------------------------------------------------------------------------------------------------


def key_codes(
    left: _Side, right: _Side, keys: tuple[str, ...], lpos: np.ndarray, rpos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """One int64 code per record for the key columns (-1 where any key is missing); codes shared by both sides."""
    if len(keys) == 1:
        jl, n = left.joint(keys[0])
        jr, _ = right.joint(keys[0])
        return jl[lpos], jr[rpos], n
    cl = np.zeros(len(lpos), dtype=np.int64)
    cr = np.zeros(len(rpos), dtype=np.int64)
    bad_l = np.zeros(len(lpos), dtype=bool)
    bad_r = np.zeros(len(rpos), dtype=bool)
    size = 1
    for k in keys:
        jl, n = left.joint(k)
        jr, _ = right.joint(k)
        kl, kr = jl[lpos], jr[rpos]
        bad_l |= kl < 0
        bad_r |= kr < 0
        n = max(n, 1)
        if size * n >= _COMBINE_LIMIT:  # compact before the product could overflow
            both, uniq = pd.factorize(np.concatenate([cl, cr]))
            cl, cr, size = both[: len(cl)].astype(np.int64), both[len(cl) :].astype(np.int64), len(uniq)
        cl = cl * n + np.maximum(kl, 0)
        cr = cr * n + np.maximum(kr, 0)
        size *= n
    good = np.concatenate([~bad_l, ~bad_r])
    combined = np.concatenate([cl, cr])
    codes = np.full(len(combined), -1, dtype=np.int64)
    sub, uniq = pd.factorize(combined[good])
    codes[good] = sub
    return codes[: len(cl)], codes[len(cl) :], len(uniq)


def _ratio(value: Decimal) -> tuple[int, int]:
    num, den = value.as_integer_ratio()
    return int(num), int(den)


def within(spec: FieldSpec, lv: np.ndarray, rv: np.ndarray) -> np.ndarray:
    """Element-wise: do two non-missing values agree within the field's tolerance? (exact integer arithmetic)"""
    tol = spec.tolerance
    if spec.type == "text":
        return np.asarray(lv == rv, dtype=bool)
    if tol.kind == "exact":
        return lv == rv
    if tol.kind == "days":
        return np.abs(lv - rv) <= int(tol.value)
    if tol.kind == "abs":
        units = int(tol.value.scaleb(spec.scale or 0))
        return np.abs(lv - rv) <= units
    # rel: |l - r| <= rel * max(|l|, |r|)  <=>  |l - r| * den <= num * max(|l|, |r|)
    num, den = _ratio(tol.value)
    diff = np.abs(lv - rv)
    big = np.maximum(np.abs(lv), np.abs(rv))
    limit = _COMBINE_LIMIT // max(num, den, 1)
    if len(diff) and max(int(diff.max()), int(big.max())) >= limit:  # Python ints: exact, unbounded
        d_o, b_o = diff.astype(object), big.astype(object)
        return np.asarray(d_o * den <= b_o * num, dtype=bool)
    return diff * den <= big * num


def agree(spec: FieldSpec, lc: _Col, rc: _Col, lpos: np.ndarray, rpos: np.ndarray) -> np.ndarray:
    """True where the two records agree on the field (both missing agree; one missing differs)."""
    ok = within(spec, lc.values[lpos], rc.values[rpos])
    # A missing value is held as 0 (or code -1): only where one is missing does the answer change.
    if lc.null.any() or rc.null.any():
        ln, rn = lc.null[lpos], rc.null[rpos]
        either = ln | rn
        if either.any():
            ok = np.where(either, ln & rn, ok)
    return ok


# --------------------------------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class DuplicateGroup:
    pass_name: str
    key: dict[str, Any]
    left: np.ndarray
    right: np.ndarray


@dataclass
class EngineResult:
    """What a reconciliation found, as positions into the two frames (see :func:`describe` for break records)."""

    config: ReconConfig
    left: _Side
    right: _Side
    # 1:1 pairs that agree, and pairs that differ (with one boolean column per compared field)
    pair_pass: np.ndarray
    pair_left: np.ndarray
    pair_right: np.ndarray
    mismatch_pass: np.ndarray
    mismatch_left: np.ndarray
    mismatch_right: np.ndarray
    mismatch_fields: np.ndarray  # bool [n_mismatch, n_compare]
    groups: list[tuple[str, np.ndarray, np.ndarray]]  # aggregation matches
    duplicates: list[DuplicateGroup]
    missing_left: np.ndarray  # left records with no counterpart: MISSING_EXTERNAL
    missing_right: np.ndarray  # right records with no counterpart: MISSING_INTERNAL
    pass_names: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    # Final state of every record: FREE (missing), MATCHED, PAIRED (mismatched) or HELD (duplicate key).
    state_left: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    state_right: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    @property
    def matched_groups(self) -> int:
        return int(len(self.pair_left) + len(self.groups))

    def breaks_by_type(self) -> dict[str, int]:
        return {
            "MISSING_EXTERNAL": int(len(self.missing_left)),
            "MISSING_INTERNAL": int(len(self.missing_right)),
            "FIELD_MISMATCH": int(len(self.mismatch_left)),
            "DUPLICATE_KEY": int(len(self.duplicates)),
        }

    def matched_by_pass(self) -> dict[str, int]:
        out = {p: 0 for p in self.pass_names}
        if len(self.pair_pass):
            for i, n in zip(*np.unique(self.pair_pass, return_counts=True), strict=True):
                out[self.pass_names[int(i)]] += int(n)
        for name, _, _ in self.groups:
            out[name] += 1
        return out

    def matched_ids(self) -> tuple[set[str], set[str]]:
        """Identities of every record in a match (for closing breaks the run no longer finds)."""
        lids = set(self.left.ids_at(np.flatnonzero(self.state_left == MATCHED)).tolist())
        rids = set(self.right.ids_at(np.flatnonzero(self.state_right == MATCHED)).tolist())
        return lids, rids


# --------------------------------------------------------------------------------------------------------------------
# The passes
# --------------------------------------------------------------------------------------------------------------------


def _pair_pass(
    p: PassSpec, left: _Side, right: _Side, state_l: np.ndarray, state_r: np.ndarray, config: ReconConfig
) -> tuple[np.ndarray, np.ndarray, list[DuplicateGroup]]:
    lpos = np.flatnonzero(state_l == FREE)
    rpos = np.flatnonzero(state_r == FREE)
    if (not len(lpos) or not len(rpos)) and p.duplicates != "report":
        return np.zeros(0, np.int64), np.zeros(0, np.int64), []
    cl, cr, n = key_codes(left, right, p.keys, lpos, rpos)
    cnt_l = np.bincount(cl[cl >= 0], minlength=n)
    cnt_r = np.bincount(cr[cr >= 0], minlength=n)
    unique = (cnt_l == 1) & (cnt_r == 1)
    r_of_code = np.full(n, -1, dtype=np.int64)
    rsel = (cr >= 0) & unique[np.maximum(cr, 0)]
    r_of_code[cr[rsel]] = rpos[rsel]
    lsel = (cl >= 0) & unique[np.maximum(cl, 0)]
    pl, pr = lpos[lsel], r_of_code[cl[lsel]]
    if p.require and len(pl):
        ok = np.ones(len(pl), dtype=bool)
        for name in p.require:
            spec = config.fields[name]
            ok &= agree(spec, left.col(name), right.col(name), pl, pr)
        pl, pr = pl[ok], pr[ok]
    dups: list[DuplicateGroup] = []
    if p.duplicates == "report":
        dup = (cnt_l > 1) | (cnt_r > 1)
        if dup.any():
            dl = (cl >= 0) & dup[np.maximum(cl, 0)]
            dr = (cr >= 0) & dup[np.maximum(cr, 0)]
            gl, gr = lpos[dl], rpos[dr]
            state_l[gl], state_r[gr] = HELD, HELD
            codes_l, codes_r = cl[dl], cr[dr]
            order_l, order_r = np.argsort(codes_l, kind="stable"), np.argsort(codes_r, kind="stable")
            codes_l, gl = codes_l[order_l], gl[order_l]
            codes_r, gr = codes_r[order_r], gr[order_r]
            dup_codes = np.flatnonzero(dup)
            starts_l = np.searchsorted(codes_l, dup_codes)
            ends_l = np.searchsorted(codes_l, dup_codes + 1)
            starts_r = np.searchsorted(codes_r, dup_codes)
            ends_r = np.searchsorted(codes_r, dup_codes + 1)
            # The key values as people read them, taken from one record of each group (one call per key field).
            from_left = ends_l > starts_l
            first_l = gl[np.minimum(starts_l, max(len(gl) - 1, 0))] if len(gl) else np.zeros(0, np.int64)
            first_r = gr[np.minimum(starts_r, max(len(gr) - 1, 0))] if len(gr) else np.zeros(0, np.int64)
            shown: dict[str, list[Any]] = {}
            for k in p.keys:
                spec = config.fields[k]
                vl = _display(spec, left.col(k), first_l[from_left]) if from_left.any() else []
                vr = _display(spec, right.col(k), first_r[~from_left]) if (~from_left).any() else []
                merged: list[Any] = [None] * len(dup_codes)
                for i, v in zip(np.flatnonzero(from_left).tolist(), vl, strict=True):
                    merged[i] = v
                for i, v in zip(np.flatnonzero(~from_left).tolist(), vr, strict=True):
                    merged[i] = v
                shown[k] = merged
            for i in range(len(dup_codes)):
                ls = gl[starts_l[i] : ends_l[i]]
                rs = gr[starts_r[i] : ends_r[i]]
                dups.append(DuplicateGroup(p.name, {k: shown[k][i] for k in p.keys}, ls, rs))
    return pl, pr, dups


def _aggregate_pass(
    p: PassSpec, left: _Side, right: _Side, state_l: np.ndarray, state_r: np.ndarray, config: ReconConfig
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Several records on the ``many`` side against one on the other, keys equal and sums within tolerance."""
    lpos = np.flatnonzero((state_l == FREE) | (state_l == HELD))
    rpos = np.flatnonzero((state_r == FREE) | (state_r == HELD))
    if not len(lpos) or not len(rpos):
        return []
    cl, cr, n = key_codes(left, right, p.keys, lpos, rpos)
    many_is_left = p.many == "left"
    cm, co = (cl, cr) if many_is_left else (cr, cl)
    pm, po = (lpos, rpos) if many_is_left else (rpos, lpos)
    sm, so = (left, right) if many_is_left else (right, left)
    cnt_m = np.bincount(cm[cm >= 0], minlength=n)
    cnt_o = np.bincount(co[co >= 0], minlength=n)
    cand = (cnt_m >= 2) & (cnt_o == 1)
    if not cand.any():
        return []
    msel = (cm >= 0) & cand[np.maximum(cm, 0)]
    osel = (co >= 0) & cand[np.maximum(co, 0)]
    ok = cand.copy()
    o_of_code = np.full(n, -1, dtype=np.int64)
    o_of_code[co[osel]] = po[osel]
    for name in p.sum:
        spec = config.fields[name]
        mc, oc = sm.col(name), so.col(name)
        sums = np.zeros(n, dtype=np.int64)
        np.add.at(sums, cm[msel], mc.values[pm[msel]])
        has_null = np.zeros(n, dtype=bool)
        has_null[cm[msel][mc.null[pm[msel]]]] = True
        codes = np.flatnonzero(ok)
        ov = oc.values[o_of_code[codes]]
        on = oc.null[o_of_code[codes]]
        good = ~on & ~has_null[codes] & within(spec, sums[codes], ov)
        ok[codes[~good]] = False
    out = []
    if not ok.any():
        return out
    mm = msel & ok[np.maximum(cm, 0)]
    codes_m, members = cm[mm], pm[mm]
    order = np.argsort(codes_m, kind="stable")
    codes_m, members = codes_m[order], members[order]
    for code in np.flatnonzero(ok).tolist():
        a, b = np.searchsorted(codes_m, [code, code + 1])
        many = members[a:b]
        one = np.array([o_of_code[code]], dtype=np.int64)
        out.append((many, one) if many_is_left else (one, many))
    for lp, rp in out:
        state_l[lp] = MATCHED
        state_r[rp] = MATCHED
    return out


_PARALLEL_MIN_ROWS = 100_000  # below this, starting threads costs more than it saves


def _precode(L: _Side, R: _Side, config: ReconConfig) -> None:
    """Code every field the passes will use, two fields at a time on two threads.

    The codes are what :meth:`_Side.joint` and :meth:`_Side.col` would make on first use, made once either way
    (same values, same order of distinct values): only the timing changes. Arrow's ``dictionary_encode`` and
    pandas' integer factorisation release the GIL, so on two cores two columns of a million rows code at once;
    with Python string objects (no Arrow) nothing is gained and the fields are left to be coded on first use."""
    if L.n + R.n < _PARALLEL_MIN_ROWS:
        return
    keys = [k for p in config.passes for k in p.keys]
    used = dict.fromkeys([*keys, *(n for p in config.passes for n in (*p.require, *p.sum)), *config.compare])
    text = [n for n in used if config.fields[n].type == "text"]
    if not all(_arrow_text(L.frame[n]) and _arrow_text(R.frame[n]) for n in text):
        return
    numeric_keys = [n for n in dict.fromkeys(keys) if n not in text]
    jobs = [*((L.col, n) for n in text), *((L.joint, n) for n in numeric_keys)]
    jobs += [(side.col, n) for n in used if n not in text and n not in numeric_keys for side in (L, R)]
    # Each job writes only its own field's entries (distinct dict keys): a text field's codes for both sides, a
    # numeric key's columns and joint codes for both sides, another numeric field's column for one side.
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="recon-code") as pool:
        for f in [pool.submit(fn, n) for fn, n in jobs]:
            f.result()


def reconcile(left: pd.DataFrame, right: pd.DataFrame, config: ReconConfig) -> EngineResult:
    """Run every pass of ``config`` over the two frames. Deterministic: same frames, same result."""
    L, R = _Side(left, config, "left"), _Side(right, config, "right")
    L.other, R.other = R, L
    _precode(L, R, config)
    state_l = np.zeros(L.n, dtype=np.int8)
    state_r = np.zeros(R.n, dtype=np.int8)
    compare = config.compare
    pass_names = tuple(p.name for p in config.passes)
    pairs: list[tuple[int, np.ndarray, np.ndarray]] = []
    mism: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    groups: list[tuple[str, np.ndarray, np.ndarray]] = []
    dups: list[DuplicateGroup] = []
    for i, p in enumerate(config.passes):
        if p.kind == "pair":
            pl, pr, d = _pair_pass(p, L, R, state_l, state_r, config)
            dups.extend(d)
            if not len(pl):
                continue
            differ = np.zeros((len(pl), len(compare)), dtype=bool)
            for j, name in enumerate(compare):
                differ[:, j] = ~agree(config.fields[name], L.col(name), R.col(name), pl, pr)
            bad = differ.any(axis=1)
            pairs.append((i, pl[~bad], pr[~bad]))
            mism.append((i, pl[bad], pr[bad], differ[bad]))
            state_l[pl[~bad]], state_r[pr[~bad]] = MATCHED, MATCHED
            state_l[pl[bad]], state_r[pr[bad]] = PAIRED, PAIRED
        else:
            for lp, rp in _aggregate_pass(p, L, R, state_l, state_r, config):
                groups.append((p.name, lp, rp))
    # Duplicate groups keep only the records no aggregation accounted for.
    kept: list[DuplicateGroup] = []
    for g in dups:
        gl, gr = g.left[state_l[g.left] == HELD], g.right[state_r[g.right] == HELD]
        if len(gl) or len(gr):
            kept.append(DuplicateGroup(g.pass_name, g.key, gl, gr))

    def cat(parts: list[np.ndarray], dtype: Any = np.int64) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    return EngineResult(
        config=config,
        left=L,
        right=R,
        pair_pass=cat([np.full(len(a), i) for i, a, _ in pairs]),
        pair_left=cat([a for _, a, _ in pairs]),
        pair_right=cat([b for _, _, b in pairs]),
        mismatch_pass=cat([np.full(len(a), i) for i, a, _, _ in mism]),
        mismatch_left=cat([a for _, a, _, _ in mism]),
        mismatch_right=cat([b for _, _, b, _ in mism]),
        mismatch_fields=(
            np.concatenate([m for *_, m in mism]) if mism else np.zeros((0, len(compare)), dtype=bool)
        ),
        groups=groups,
        duplicates=kept,
        missing_left=np.flatnonzero(state_l == FREE),
        missing_right=np.flatnonzero(state_r == FREE),
        pass_names=pass_names,
        state_left=state_l,
        state_right=state_r,
    )


# --------------------------------------------------------------------------------------------------------------------
# Break records: what a person reads
# --------------------------------------------------------------------------------------------------------------------


def _display(spec: FieldSpec, col: _Col, pos: np.ndarray) -> list[Any]:
    """Values as JSON-able text: exact decimals without trailing zeros, ISO dates, text as is; None for missing."""
    vals, null = col.values[pos], col.null[pos]
    if spec.type == "text":
        labels = col.labels.take(np.where(null, 0, vals)) if len(col.labels) else [None] * len(pos)
        return [None if n else v for v, n in zip(labels, null.tolist(), strict=True)]
    if spec.type == "date":
        days = (_EPOCH + vals.astype("timedelta64[D]")).astype(str)
        return [None if n else d for d, n in zip(days.tolist(), null.tolist(), strict=True)]
    return [None if n else t for t, n in zip(_dec_texts(vals, spec.scale or 0), null.tolist(), strict=True)]


def _dec_texts(units: np.ndarray, scale: int) -> list[str]:
    """Integer units of 10^-scale as exact decimal text without trailing zeros ('1234.5', '-0.01', '100'),
    vectorised: the integer and fraction parts are split with integer arithmetic, never through a float."""
    units = np.asarray(units, dtype=np.int64)
    if scale == 0 or not len(units):
        return [str(int(v)) for v in units.tolist()]
    if (np.abs(units) >= 2**62).any():  # out of the vectorised range: exact one by one
        return [_dec_text(int(v), scale) for v in units.tolist()]
    mag = np.abs(units)
    whole, frac = np.divmod(mag, 10**scale)
    frac_text = np.strings.rstrip(np.strings.zfill(frac.astype(str), scale), "0")
    text = np.where(
        frac_text == "", whole.astype(str), np.strings.add(np.strings.add(whole.astype(str), "."), frac_text)
    )
    text = np.where(units < 0, np.strings.add("-", text), text)
    return text.tolist()


def _dec_text(units: int, scale: int) -> str:
    d = Decimal(units).scaleb(-scale)
    return format(d.normalize(), "f") if d else "0"


def _records(side: _Side, pos: np.ndarray) -> list[dict[str, Any]]:
    cfg = side.config
    names = ["_id", *cfg.fields]
    cols = [side.ids_at(pos).tolist(), *(_display(spec, side.col(n), pos) for n, spec in cfg.fields.items())]
    # One dict per record from the columns zipped (C loops), not a comprehension per record.
    return [dict(zip(names, row, strict=True)) for row in zip(*cols, strict=True)]


def _units(side: _Side, name: str | None, pos: int) -> tuple[int, int] | None:
    """(units, scale) of a numeric field of one record, or None when missing."""
    if name is None:
        return None
    col = side.col(name)
    if col.null[pos]:
        return None
    return int(col.values[pos]), side.config.fields[name].scale or 0


def _money(units: int, scale: int) -> Decimal:
    """A value to the Money column's 4 decimals (half-even) as Decimal."""
    return Decimal(units).scaleb(-scale).quantize(Decimal("0.0001"))


def _value(side: _Side, pos: int) -> Decimal | None:
    """A record's value: its amount, else quantity x price."""
    st = side.config.stake
    amt = _units(side, st.get("amount"), pos)
    if amt is not None:
        return abs(_money(*amt))
    q, p = _units(side, st.get("quantity"), pos), _units(side, st.get("price"), pos)
    if q is not None and p is not None:
        return abs(_money(q[0] * p[0], q[1] + p[1]))
    return None


def _stake_mismatch(result: EngineResult, lp: int, rp: int, fields: list[str]) -> Decimal:
    L, R, st = result.left, result.right, result.config.stake
    amount = st.get("amount")
    if amount in fields:
        a, b = _units(L, amount, lp), _units(R, amount, rp)
        if a is not None and b is not None:
            return abs(_money(a[0] - b[0], a[1]))
    qty, price = st.get("quantity"), st.get("price")
    if qty in fields:
        a, b = _units(L, qty, lp), _units(R, qty, rp)
        px = _units(L, price, lp) or _units(R, price, rp)
        if a is not None and b is not None and px is not None:
            return abs(_money((a[0] - b[0]) * px[0], a[1] + px[1]))
    return _value(L, lp) or _value(R, rp) or Decimal(0)


def _currency(side: _Side, pos: int) -> str | None:
    name = side.config.currency
    if name is None:
        return None
    col = side.col(name)
    if col.null[pos]:
        return None
    v = col.labels.take(col.values[pos : pos + 1])[0] if col.labels is not None else col.values[pos]
    return str(v)[:3]


def _currencies(side: _Side, pos: np.ndarray) -> list[str | None]:
    """:func:`_currency` of many records at once (one take of the labels, not one per break)."""
    name = side.config.currency
    if name is None or not len(pos):
        return [None] * len(pos)
    col = side.col(name)
    null = col.null[pos]
    if col.labels is not None:
        vals = col.labels.take(np.where(null, 0, col.values[pos])) if len(col.labels) else [None] * len(pos)
    else:
        vals = col.values[pos].tolist()
    return [None if n else str(v)[:3] for v, n in zip(vals, null.tolist(), strict=True)]


def _field_lists(differ: np.ndarray, compare: list[str]) -> list[tuple[str, ...]]:
    """The differing field names of each mismatch (rows of the boolean matrix), each distinct pattern made once."""
    if not len(differ):
        return []
    patterns, inverse = np.unique(differ, axis=0, return_inverse=True)
    names = [tuple(compare[j] for j in np.flatnonzero(row).tolist()) for row in patterns]
    return [names[i] for i in np.asarray(inverse).reshape(-1).tolist()]


DESCRIBE_CHUNK = 1_000  # breaks per chunk of describe_chunks(): small enough for the first to be stored early


def describe(result: EngineResult) -> list[dict[str, Any]]:
    """One dict per break: ``break_type``, ``internal_ref``/``external_ref`` (record identities), ``key`` (what
    the fingerprint is made of), ``fields`` (differing), ``differences`` [{field, internal, external}],
    ``root_cause``, ``category``, ``amount`` (Decimal at stake), ``currency``, ``internal_record``,
    ``external_record``. Sorted by type and identities (deterministic)."""
    return [b for chunk in describe_chunks(result) for b in chunk]


def describe_chunks(result: EngineResult, size: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """The breaks :func:`describe` gives, in its order, ``size`` at a time, each chunk made when it is asked for.

    A run stores the first chunks while the next are made (the database's time and this Python overlap). The
    order is decided first, on the identities alone, and each type's breaks are then built in that order (their
    records vectorised per chunk): the same sort key as the whole list sorted at the end, the same stable order."""
    size = size or DESCRIBE_CHUNK
    chunk: list[dict[str, Any]] = []
    # Types in the order of their names, as the sort key puts them.
    for part in (_duplicate_breaks(result), _mismatch_breaks(result, size), *_missing_breaks(result, size)):
        for b in part:
            chunk.append(b)
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _sort_key(b: dict[str, Any]) -> tuple[Any, ...]:
    return (b["break_type"], str(b["internal_ref"]), str(b["external_ref"]), b["key"])


def _mismatch_breaks(result: EngineResult, size: int) -> Iterator[dict[str, Any]]:
    cfg, L, R = result.config, result.left, result.right
    n = len(result.mismatch_left)
    if not n:
        return
    compare = list(cfg.compare)
    lids, rids = L.ids_at(result.mismatch_left).tolist(), R.ids_at(result.mismatch_right).tolist()
    fields_of = _field_lists(result.mismatch_fields, compare)
    order = sorted(range(n), key=lambda k: (str(lids[k]), str(rids[k]), [lids[k], rids[k], *fields_of[k]]))
    for start in range(0, n, size):
        sel = np.array(order[start : start + size], dtype=np.int64)
        ml, mr = result.mismatch_left[sel], result.mismatch_right[sel]
        lrec, rrec = _records(L, ml), _records(R, mr)
        cur_l, cur_r = _currencies(L, ml), _currencies(R, mr)
        passes = result.mismatch_pass[sel].tolist()
        for j, (k, lp, rp) in enumerate(zip(sel.tolist(), ml.tolist(), mr.tolist(), strict=True)):
            fields = list(fields_of[k])
            first = cfg.fields[fields[0]]
            yield {
                "break_type": "FIELD_MISMATCH",
                "pass": result.pass_names[int(passes[j])],
                "internal_ref": lrec[j]["_id"],
                "external_ref": rrec[j]["_id"],
                "key": [lrec[j]["_id"], rrec[j]["_id"], *fields],
                "fields": fields,
                "differences": [{"field": f, "internal": lrec[j][f], "external": rrec[j][f]} for f in fields],
                "root_cause": next((cfg.fields[f].code for f in fields if cfg.fields[f].code), None),
                "category": first.category,
                "amount": _stake_mismatch(result, lp, rp, fields),
                "currency": cur_l[j] or cur_r[j],
                "internal_record": lrec[j],
                "external_record": rrec[j],
            }


def _missing_breaks(result: EngineResult, size: int) -> list[Iterator[dict[str, Any]]]:
    codes = result.config.missing_codes

    def part(kind: str, side: _Side, pos: np.ndarray, internal: bool) -> Iterator[dict[str, Any]]:
        if not len(pos):
            return
        ids = side.ids_at(pos).tolist()
        if internal:  # (internal_ref, external_ref) = (identity, None)
            order = sorted(range(len(ids)), key=lambda k: (str(ids[k]), "None", [ids[k]]))
        else:
            order = sorted(range(len(ids)), key=lambda k: ("None", str(ids[k]), [ids[k]]))
        ref_key, rec_key = (
            ("internal_ref", "internal_record") if internal else ("external_ref", "external_record")
        )
        for start in range(0, len(order), size):
            p = pos[np.array(order[start : start + size], dtype=np.int64)]
            recs, currencies = _records(side, p), _currencies(side, p)
            for j, q in enumerate(p.tolist()):
                b = {
                    "break_type": kind,
                    "pass": None,
                    "internal_ref": None,
                    "external_ref": None,
                    "key": [recs[j]["_id"]],
                    "fields": [],
                    "differences": [],
                    "root_cause": codes.get(kind),
                    "category": kind,
                    "amount": _value(side, q) or Decimal(0),
                    "currency": currencies[j],
                    "internal_record": None,
                    "external_record": None,
                }
                b[ref_key] = recs[j]["_id"]
                b[rec_key] = recs[j]
                yield b

    return [
        part("MISSING_EXTERNAL", result.left, result.missing_left, True),
        part("MISSING_INTERNAL", result.right, result.missing_right, False),
    ]


def _duplicate_breaks(result: EngineResult) -> list[dict[str, Any]]:
    L, R, codes = result.left, result.right, result.config.missing_codes
    if not result.duplicates:
        return []
    # Every record of every group in one take per side (vectorised per column), then handed out.
    lall = _records(L, np.concatenate([g.left for g in result.duplicates]).astype(np.int64))
    rall = _records(R, np.concatenate([g.right for g in result.duplicates]).astype(np.int64))
    out: list[dict[str, Any]] = []
    a = b = 0
    for g in result.duplicates:
        lrecs, rrecs = lall[a : a + len(g.left)], rall[b : b + len(g.right)]
        a, b = a + len(g.left), b + len(g.right)
        key_text = "|".join("" if v is None else str(v) for v in g.key.values())
        amount = max(
            [_value(L, int(p)) or Decimal(0) for p in g.left]
            + [_value(R, int(p)) or Decimal(0) for p in g.right]
        )
        out.append(
            {
                "break_type": "DUPLICATE_KEY",
                "pass": g.pass_name,
                "internal_ref": lrecs[0]["_id"] if lrecs else None,
                "external_ref": rrecs[0]["_id"] if rrecs else None,
                "key": [key_text],
                "fields": list(g.key),
                "differences": [
                    {"field": "records", "internal": len(lrecs), "external": len(rrecs), "key": g.key}
                ],
                "root_cause": codes.get("DUPLICATE_KEY"),
                "category": "DUPLICATE_KEY",
                "amount": amount,
                "currency": (_currency(L, int(g.left[0])) if len(g.left) else _currency(R, int(g.right[0]))),
                "internal_record": {"key": g.key, "records": lrecs} if lrecs else None,
                "external_record": {"key": g.key, "records": rrecs} if rrecs else None,
            }
        )
    out.sort(key=_sort_key)
    return out


def summary(result: EngineResult) -> dict[str, Any]:
    return {
        "left_records": result.left.n,
        "right_records": result.right.n,
        "matched": result.matched_groups,
        "matched_by_pass": result.matched_by_pass(),
        "breaks": result.breaks_by_type(),
    }
