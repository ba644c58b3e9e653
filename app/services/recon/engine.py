"""The matcher: two frames and a definition's config in, matches and breaks out. No Qt, no database.

Each side is a DataFrame with an ``_id`` column (the record's stable identity, used in matches, breaks and their
fingerprints) and one column per config field, held exactly: numbers as nullable ``Int64`` integers of the field's
scale (money in units of 1e-4 and so on, see :mod:`.config`), dates as nullable ``Int64`` day numbers (or
``datetime64``, converted here), text as objects with ``None`` for missing. Nothing is ever a float.

How a pass runs, vectorised: every key column of both sides is factorised together into integer codes, the codes of
a multi-column key are combined into one integer, and ``np.bincount`` counts each key value per side. A key value
with exactly one record on each side is a pair (found through an array indexed by code, no join); a key value with
more than one record on a side is never paired by row order. Compared fields are checked column by column over all
pairs at once. Aggregation sums the many side per code with exact int64 arithmetic.

Records whose key is duplicated in a ``duplicates: report`` pass are held aside; an aggregation later may still
account for them (several bank lines quoting one settlement). What is still held at the end is one DUPLICATE_KEY
break per key value, listing every record on both sides with that value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from .config import FieldSpec, PassSpec, ReconConfig

FREE, MATCHED, PAIRED, HELD = 0, 1, 2, 3
_EPOCH = np.datetime64("1970-01-01", "D")
_COMBINE_LIMIT = 2**62


# --------------------------------------------------------------------------------------------------------------------
# Column access
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class _Col:
    """A field's values on one side as numpy arrays: ``values`` (int64, or object for text) and ``null``."""

    values: np.ndarray
    null: np.ndarray


def _column(frame: pd.DataFrame, spec: FieldSpec) -> _Col:
    s = frame[spec.name]
    if spec.type == "text":
        vals = s.to_numpy(dtype=object)
        null = pd.isna(s).to_numpy()
        if null.any():
            vals = vals.copy()
            vals[null] = None
        return _Col(vals, null)
    if spec.type == "date" and (pd.api.types.is_datetime64_any_dtype(s) or s.dtype == object):
        days = pd.to_datetime(s, errors="raise").to_numpy().astype("datetime64[D]")
        null = np.isnat(days)
        vals = np.where(null, 0, (days - _EPOCH).astype(np.int64))
        return _Col(vals.astype(np.int64), null)
    null = pd.isna(s).to_numpy()
    if isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        vals = s.to_numpy(dtype=np.int64, na_value=0)
    else:
        if s.dtype.kind == "f":
            raise TypeError(
                f"field {spec.name!r} holds floats; numbers must be exact integers of their scale"
            )
        vals = np.where(null, 0, s.to_numpy()).astype(np.int64)
    return _Col(vals, null)


class _Side:
    """One side's frame with lazily extracted columns."""

    def __init__(self, frame: pd.DataFrame, config: ReconConfig, name: str) -> None:
        missing = [c for c in ["_id", *config.fields] if c not in frame.columns]
        if missing:
            raise KeyError(f"the {name} frame lacks the columns {missing}")
        self.frame = frame.reset_index(drop=True)
        self.config = config
        self.n = len(frame)
        self.ids = self.frame["_id"].to_numpy(dtype=object)
        self._cols: dict[str, _Col] = {}

    def col(self, name: str) -> _Col:
        if name not in self._cols:
            self._cols[name] = _column(self.frame, self.config.fields[name])
        return self._cols[name]


# --------------------------------------------------------------------------------------------------------------------
# Keys and comparisons
# --------------------------------------------------------------------------------------------------------------------


def _factorize_pair(
    lc: _Col, rc: _Col, lpos: np.ndarray, rpos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    both = np.concatenate([lc.values[lpos], rc.values[rpos]])
    null = np.concatenate([lc.null[lpos], rc.null[rpos]])
    codes, uniques = pd.factorize(both)
    codes = codes.astype(np.int64)
    codes[null] = -1
    n = len(lpos)
    return codes[:n], codes[n:], len(uniques)


def key_codes(
    left: _Side, right: _Side, keys: tuple[str, ...], lpos: np.ndarray, rpos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """One int64 code per record for the key columns (-1 where any key is missing); codes shared by both sides."""
    cl = np.zeros(len(lpos), dtype=np.int64)
    cr = np.zeros(len(rpos), dtype=np.int64)
    size = 1
    for k in keys:
        kl, kr, n = _factorize_pair(left.col(k), right.col(k), lpos, rpos)
        bad_l, bad_r = (cl < 0) | (kl < 0), (cr < 0) | (kr < 0)
        if size * max(n, 1) >= _COMBINE_LIMIT:  # compact before the product could overflow
            both, uniq = pd.factorize(np.concatenate([cl, cr]))
            cl, cr, size = both[: len(cl)].astype(np.int64), both[len(cl) :].astype(np.int64), len(uniq)
        cl = cl * max(n, 1) + kl
        cr = cr * max(n, 1) + kr
        size *= max(n, 1)
        cl[bad_l] = -1
        cr[bad_r] = -1
    both, uniq = pd.factorize(np.concatenate([cl, cr]))
    both = both.astype(np.int64)
    # factorize keeps -1 as its own value: put the sentinel back.
    sentinel = np.concatenate([cl, cr]) < 0
    both[sentinel] = -1
    return both[: len(cl)], both[len(cl) :], len(uniq)


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
    ln, rn = lc.null[lpos], rc.null[rpos]
    lv, rv = lc.values[lpos], rc.values[rpos]
    ok = ln & rn
    both = ~ln & ~rn
    if both.any():
        ok[both] = within(spec, lv[both], rv[both])
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
        lids = set(self.left.ids[self.pair_left].tolist())
        rids = set(self.right.ids[self.pair_right].tolist())
        for _, lp, rp in self.groups:
            lids.update(self.left.ids[lp].tolist())
            rids.update(self.right.ids[rp].tolist())
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
            for code in np.flatnonzero(dup).tolist():
                a, b = np.searchsorted(codes_l, [code, code + 1])
                c, d = np.searchsorted(codes_r, [code, code + 1])
                ls, rs = gl[a:b], gr[c:d]
                side, pos = (left, ls[0]) if len(ls) else (right, rs[0])
                key = {k: _display(config.fields[k], side.col(k), np.array([pos]))[0] for k in p.keys}
                dups.append(DuplicateGroup(p.name, key, ls, rs))
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


def reconcile(left: pd.DataFrame, right: pd.DataFrame, config: ReconConfig) -> EngineResult:
    """Run every pass of ``config`` over the two frames. Deterministic: same frames, same result."""
    L, R = _Side(left, config, "left"), _Side(right, config, "right")
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
    )


# --------------------------------------------------------------------------------------------------------------------
# Break records: what a person reads
# --------------------------------------------------------------------------------------------------------------------


def _display(spec: FieldSpec, col: _Col, pos: np.ndarray) -> list[Any]:
    """Values as JSON-able text: exact decimals without trailing zeros, ISO dates, text as is; None for missing."""
    vals, null = col.values[pos], col.null[pos]
    if spec.type == "text":
        return [None if n else v for v, n in zip(vals.tolist(), null.tolist(), strict=True)]
    if spec.type == "date":
        days = (_EPOCH + vals.astype("timedelta64[D]")).astype(str)
        return [None if n else d for d, n in zip(days.tolist(), null.tolist(), strict=True)]
    scale = spec.scale or 0
    return [
        None if n else _dec_text(int(v), scale) for v, n in zip(vals.tolist(), null.tolist(), strict=True)
    ]


def _dec_text(units: int, scale: int) -> str:
    d = Decimal(units).scaleb(-scale)
    return format(d.normalize(), "f") if d else "0"


def _records(side: _Side, pos: np.ndarray) -> list[dict[str, Any]]:
    cfg = side.config
    cols = {name: _display(spec, side.col(name), pos) for name, spec in cfg.fields.items()}
    ids = side.ids[pos].tolist()
    out = []
    for i, rid in enumerate(ids):
        rec = {"_id": rid}
        rec.update({name: cols[name][i] for name in cfg.fields})
        out.append(rec)
    return out


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
    v = None if col.null[pos] else col.values[pos]
    return str(v)[:3] if v is not None else None


def describe(result: EngineResult) -> list[dict[str, Any]]:
    """One dict per break: ``break_type``, ``internal_ref``/``external_ref`` (record identities), ``key`` (what
    the fingerprint is made of), ``fields`` (differing), ``differences`` [{field, internal, external}],
    ``root_cause``, ``category``, ``amount`` (Decimal at stake), ``currency``, ``internal_record``,
    ``external_record``. Sorted by type and identities (deterministic)."""
    cfg, L, R = result.config, result.left, result.right
    out: list[dict[str, Any]] = []
    compare = list(cfg.compare)
    # Field mismatches
    if len(result.mismatch_left):
        lrec = _records(L, result.mismatch_left)
        rrec = _records(R, result.mismatch_right)
        for k in range(len(result.mismatch_left)):
            lp, rp = int(result.mismatch_left[k]), int(result.mismatch_right[k])
            fields = [compare[j] for j in np.flatnonzero(result.mismatch_fields[k]).tolist()]
            first = cfg.fields[fields[0]]
            out.append(
                {
                    "break_type": "FIELD_MISMATCH",
                    "pass": result.pass_names[int(result.mismatch_pass[k])],
                    "internal_ref": lrec[k]["_id"],
                    "external_ref": rrec[k]["_id"],
                    "key": [lrec[k]["_id"], rrec[k]["_id"], *fields],
                    "fields": fields,
                    "differences": [
                        {"field": f, "internal": lrec[k][f], "external": rrec[k][f]} for f in fields
                    ],
                    "root_cause": next((cfg.fields[f].code for f in fields if cfg.fields[f].code), None),
                    "category": first.category,
                    "amount": _stake_mismatch(result, lp, rp, fields),
                    "currency": _currency(L, lp) or _currency(R, rp),
                    "internal_record": lrec[k],
                    "external_record": rrec[k],
                }
            )
    codes = cfg.missing_codes
    for kind, side, pos, ref_key, rec_key in (
        ("MISSING_EXTERNAL", L, result.missing_left, "internal_ref", "internal_record"),
        ("MISSING_INTERNAL", R, result.missing_right, "external_ref", "external_record"),
    ):
        if not len(pos):
            continue
        recs = _records(side, pos)
        for k, p in enumerate(pos.tolist()):
            b = {
                "break_type": kind,
                "pass": None,
                "internal_ref": None,
                "external_ref": None,
                "key": [recs[k]["_id"]],
                "fields": [],
                "differences": [],
                "root_cause": codes.get(kind),
                "category": kind,
                "amount": _value(side, p) or Decimal(0),
                "currency": _currency(side, p),
                "internal_record": None,
                "external_record": None,
            }
            b[ref_key] = recs[k]["_id"]
            b[rec_key] = recs[k]
            out.append(b)
    for g in result.duplicates:
        lrecs, rrecs = _records(L, g.left), _records(R, g.right)
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
    out.sort(key=lambda b: (b["break_type"], str(b["internal_ref"]), str(b["external_ref"]), b["key"]))
    return out


def summary(result: EngineResult) -> dict[str, Any]:
    return {
        "left_records": result.left.n,
        "right_records": result.right.n,
        "matched": result.matched_groups,
        "matched_by_pass": result.matched_by_pass(),
        "breaks": result.breaks_by_type(),
    }
