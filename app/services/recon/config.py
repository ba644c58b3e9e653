"""A recon definition's configuration: typed, validated, and stored as JSON on ``recon_definitions.config``.

The JSON a supervisor edits (``opsdesk recon edit NAME --config FILE.json``)::

    {
      "left":  {"source": "trades", "where": {"status": {"ne": "CANCELLED"}}, "identity": ["trade_ref"]},
      "right": {"source": "statement_lines:TRADE_CONFIRMATIONS"},
      "fields": {
        "ref":      {"left": "trade_ref", "right": "related_reference"},
        "quantity": {"type": "quantity", "code": "DQUA", "category": "QUANTITY"},
        "amount":   {"left": "net_amount", "right": "amount", "type": "money", "tolerance": "abs=0.01",
                     "code": "DMON", "category": "AMOUNT"},
        "settlement_date": {"left": "settlement_date", "right": "value_date", "type": "date",
                            "tolerance": "days=0", "code": "DDAT"}
      },
      "key": ["ref"],
      "compare": ["quantity", "amount", "settlement_date"],
      "passes": [
        {"name": "exact_ref", "kind": "pair", "keys": ["ref"], "duplicates": "report"},
        {"name": "composite", "kind": "pair", "keys": ["isin", "quantity", "settlement_date"], "require": ["amount"]},
        {"name": "aggregate", "kind": "aggregate", "many": "left", "keys": ["isin"], "sum": ["quantity", "amount"]}
      ],
      "stake": {"amount": "amount", "quantity": "quantity", "price": "price"},
      "currency": "currency",
      "coverage": [],
      "missing_codes": {"MISSING_EXTERNAL": "CMIS"}
    }

A field names a column on each side (``left``/``right``, both default to the field's own name), a type (``text``,
``money``, ``quantity``, ``price``, ``number``, ``date``) and a tolerance: ``abs=X`` (absolute, in the field's
unit), ``rel=X`` (relative to the larger magnitude, 0.001 = 0.1 %) or ``days=N`` (dates). Numbers are compared as
exact integers of their scale (money 1e-4, quantity 1e-6, price 1e-8), never as floats.

Passes run in order over what earlier passes left: ``pair`` pairs a record with the one record on the other side
that has the same key values (a key value that occurs more than once on either side is never paired by row order;
with ``"duplicates": "report"`` it becomes a DUPLICATE_KEY break unless a later aggregation accounts for it);
``require`` lists fields that must agree within tolerance for the pair to be formed at all; a formed pair is then
compared on ``compare`` and is a match or a FIELD_MISMATCH. ``aggregate`` matches several records on the ``many``
side against one on the other when their ``keys`` agree and the sums of ``sum`` agree within tolerance (partial
fills against a block; several bank lines against one settlement).

Every error names the field at fault (``passes[1].keys[2]: unknown field 'isn'``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from app.services.errors import ValidationFailed

# Field types and the integer scale their values are held at (number: chosen from the data, files only).
SCALES = {"money": 4, "quantity": 6, "price": 8}
FIELD_TYPES = ("text", "money", "quantity", "price", "number", "date")
NUMERIC_TYPES = ("money", "quantity", "price", "number")
PASS_KINDS = ("pair", "aggregate")
BREAK_KINDS = ("MISSING_INTERNAL", "MISSING_EXTERNAL", "FIELD_MISMATCH", "DUPLICATE_KEY")
WHERE_OPS = ("eq", "ne", "in", "not_in", "not_null", "is_null")

_TOLERANCE = re.compile(r"^\s*(abs|rel|days)\s*=\s*([^\s]+)\s*$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class ConfigError(ValidationFailed):
    """A definition config that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Tolerance:
    """How far two values may differ and still agree. ``kind`` exact, abs, rel or days."""

    kind: str = "exact"
    value: Decimal = Decimal(0)

    @property
    def text(self) -> str:
        return "exact" if self.kind == "exact" else f"{self.kind}={format(self.value.normalize(), 'f')}"


def parse_tolerance(spec: Any, where: str = "tolerance") -> Tolerance:
    """``abs=0.01`` / ``rel=0.001`` / ``days=2`` / ``exact`` (or a dict ``{"abs": "0.01"}``) to a Tolerance."""
    if spec is None or spec == "" or (isinstance(spec, str) and spec.strip().lower() == "exact"):
        return Tolerance()
    if isinstance(spec, Mapping):
        if len(spec) != 1:
            raise ConfigError(f"{where}: give one of abs, rel or days (got {sorted(spec)})")
        ((kind, value),) = spec.items()
        text = f"{kind}={value}"
    elif isinstance(spec, str):
        text = spec
    else:
        raise ConfigError(f"{where}: expected text such as 'abs=0.01', 'rel=0.001' or 'days=2', got {spec!r}")
    m = _TOLERANCE.match(text)
    if not m:
        raise ConfigError(
            f"{where}: bad tolerance {text!r}; write abs=X (absolute), rel=X (relative, 0.001 = 0.1 %) or days=N"
        )
    kind, raw = m.group(1).lower(), m.group(2)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{where}: {raw!r} in {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{where}: {text!r} must be a non-negative number")
    if kind == "days" and value != value.to_integral_value():
        raise ConfigError(f"{where}: {text!r} must be a whole number of days")
    if kind == "rel" and value >= 1:
        raise ConfigError(f"{where}: {text!r} is a fraction (0.001 = 0.1 %) and must be below 1")
    return Tolerance(kind, value)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    left: str
    right: str
    type: str = "text"
    tolerance: Tolerance = field(default_factory=Tolerance)
    code: str | None = None  # market reason code when this field differs: DQUA, DMON, DDAT, DSEC ...
    category: str | None = None  # words for the work list: QUANTITY, AMOUNT ...
    scale: int | None = None  # numbers: integer scale the values are held at

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_TYPES


@dataclass(frozen=True)
class SideSpec:
    source: str
    where: dict[str, dict[str, Any]] = field(default_factory=dict)
    identity: tuple[str, ...] = ()
    label: str = ""


@dataclass(frozen=True)
class PassSpec:
    name: str
    kind: str
    keys: tuple[str, ...]
    require: tuple[str, ...] = ()
    duplicates: str = "skip"  # pair passes: report | skip
    many: str = "left"  # aggregate passes: which side has several records
    sum: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReconConfig:
    left: SideSpec
    right: SideSpec
    fields: dict[str, FieldSpec]
    key: tuple[str, ...]
    compare: tuple[str, ...]
    passes: tuple[PassSpec, ...]
    stake: dict[str, str] = field(default_factory=dict)
    currency: str | None = None
    coverage: tuple[str, ...] = ()
    missing_codes: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def field_names(self) -> list[str]:
        return list(self.fields)


# ---------------------------------------------------------------------------------------------------------------------


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected an object ({{...}}), got {type(value).__name__}")
    return value


def _names(
    value: Any, where: str, known: Mapping[str, Any] | None = None, *, empty: bool = True
) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: expected a list of field names")
    if not value and not empty:
        raise ConfigError(f"{where}: needs at least one field")
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise ConfigError(f"{where}[{i}]: expected a field name, got {v!r}")
        if known is not None and v not in known:
            raise ConfigError(f"{where}[{i}]: unknown field {v!r} (fields: {', '.join(sorted(known))})")
        if v in out:
            raise ConfigError(f"{where}[{i}]: {v!r} is listed twice")
        out.append(v)
    return tuple(out)


def _unknown_keys(d: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown setting {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _side(raw: Any, where: str, columns: Mapping[str, set[str]] | None) -> SideSpec:
    d = _obj(raw, where)
    _unknown_keys(d, {"source", "where", "identity", "label"}, where)
    source = d.get("source")
    if not isinstance(source, str) or not source:
        raise ConfigError(f"{where}.source: name the source to read (e.g. 'trades')")
    if columns is not None and source not in columns:
        raise ConfigError(
            f"{where}.source: unknown source {source!r} (sources: {', '.join(sorted(columns))})"
        )
    cols = columns.get(source) if columns is not None else None
    conds: dict[str, dict[str, Any]] = {}
    for col, cond in _obj(d.get("where", {}), f"{where}.where").items():
        w = f"{where}.where.{col}"
        if cols is not None and col not in cols:
            raise ConfigError(f"{w}: the source {source!r} has no column {col!r}")
        c = _obj(cond, w)
        if len(c) != 1 or next(iter(c)) not in WHERE_OPS:
            raise ConfigError(
                f"{w}: give one condition of {', '.join(WHERE_OPS)} (e.g. {{'ne': 'CANCELLED'}})"
            )
        op, val = next(iter(c.items()))
        if op in ("in", "not_in") and not isinstance(val, list):
            raise ConfigError(f"{w}.{op}: expected a list of values")
        conds[col] = {op: val}
    identity = _names(d.get("identity", []), f"{where}.identity")
    for i, col in enumerate(identity):
        if cols is not None and col not in cols:
            raise ConfigError(f"{where}.identity[{i}]: the source {source!r} has no column {col!r}")
    return SideSpec(source, conds, identity, str(d.get("label", "")))


def _field(name: str, raw: Any, left_cols: set[str] | None, right_cols: set[str] | None) -> FieldSpec:
    where = f"fields.{name}"
    if not _NAME.match(name):
        raise ConfigError(f"{where}: a field name is letters, digits and _ (got {name!r})")
    d = _obj(raw, where)
    _unknown_keys(d, {"left", "right", "type", "tolerance", "code", "category", "scale"}, where)
    left, right = d.get("left", name), d.get("right", name)
    for side, col, cols in (("left", left, left_cols), ("right", right, right_cols)):
        if not isinstance(col, str) or not col:
            raise ConfigError(f"{where}.{side}: name the column on the {side} side")
        if cols is not None and col not in cols:
            raise ConfigError(
                f"{where}.{side}: the {side} source has no column {col!r} (it has: {', '.join(sorted(cols))})"
            )
    ftype = d.get("type", "text")
    if ftype not in FIELD_TYPES:
        raise ConfigError(f"{where}.type: {ftype!r} is not one of {', '.join(FIELD_TYPES)}")
    tol = parse_tolerance(d.get("tolerance"), f"{where}.tolerance")
    if tol.kind == "days" and ftype != "date":
        raise ConfigError(f"{where}.tolerance: days=N applies to dates; {name!r} is {ftype}")
    if tol.kind in ("abs", "rel") and ftype not in NUMERIC_TYPES:
        raise ConfigError(f"{where}.tolerance: {tol.kind}=X applies to numbers; {name!r} is {ftype}")
    scale = d.get("scale", SCALES.get(ftype))
    if ftype == "number" and scale is None:
        scale = 6
    if scale is not None and (not isinstance(scale, int) or not 0 <= scale <= 12):
        raise ConfigError(f"{where}.scale: a whole number of decimals from 0 to 12")
    if (
        tol.kind == "abs"
        and scale is not None
        and tol.value.scaleb(scale) != tol.value.scaleb(scale).to_integral_value()
    ):
        raise ConfigError(f"{where}.tolerance: {tol.text} has more decimals than the field keeps ({scale})")
    code = d.get("code")
    if code is not None and (not isinstance(code, str) or not 1 <= len(code) <= 16):
        raise ConfigError(f"{where}.code: a reason code of 1 to 16 characters (DQUA, DMON, DDAT ...)")
    category = d.get("category")
    if category is not None and (not isinstance(category, str) or not 1 <= len(category) <= 32):
        raise ConfigError(f"{where}.category: words of 1 to 32 characters")
    return FieldSpec(name, left, right, ftype, tol, code, category or (name.upper()[:32]), scale)


def _pass(i: int, raw: Any, fields: Mapping[str, FieldSpec]) -> PassSpec:
    where = f"passes[{i}]"
    d = _obj(raw, where)
    _unknown_keys(d, {"name", "kind", "keys", "require", "duplicates", "many", "sum"}, where)
    name = d.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or name == "manual":
        raise ConfigError(f"{where}.name: letters, digits and _ ('manual' is kept for people's matches)")
    kind = d.get("kind", "pair")
    if kind not in PASS_KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(PASS_KINDS)}")
    keys = _names(d.get("keys"), f"{where}.keys", fields, empty=False)
    require = _names(d.get("require", []), f"{where}.require", fields)
    duplicates = d.get("duplicates", "skip")
    if duplicates not in ("report", "skip"):
        raise ConfigError(f"{where}.duplicates: 'report' or 'skip'")
    many = d.get("many", "left")
    if many not in ("left", "right"):
        raise ConfigError(f"{where}.many: 'left' or 'right'")
    sums = _names(d.get("sum", []), f"{where}.sum", fields)
    if kind == "aggregate":
        if not sums:
            raise ConfigError(f"{where}.sum: an aggregation needs the numeric fields to add up")
        for j, s in enumerate(sums):
            if not fields[s].numeric:
                raise ConfigError(f"{where}.sum[{j}]: {s!r} is {fields[s].type}; only numbers add up")
            if s in keys:
                raise ConfigError(f"{where}.sum[{j}]: {s!r} is also a key")
    elif sums or "many" in d:
        raise ConfigError(f"{where}: 'sum' and 'many' belong to aggregate passes")
    return PassSpec(name, kind, keys, require, duplicates, many, sums)


def parse_config(raw: Any, columns: Mapping[str, set[str]] | None = None) -> ReconConfig:
    """Validate a definition's JSON; ``columns`` (source name to its columns) also checks every column named.

    Raises ConfigError naming the first field at fault.
    """
    d = _obj(raw, "config")
    _unknown_keys(
        d,
        {
            "left",
            "right",
            "fields",
            "key",
            "compare",
            "passes",
            "stake",
            "currency",
            "coverage",
            "missing_codes",
            "description",
        },
        "config",
    )
    left = _side(d.get("left"), "left", columns)
    right = _side(d.get("right"), "right", columns)
    lcols = columns.get(left.source) if columns is not None else None
    rcols = columns.get(right.source) if columns is not None else None
    raw_fields = _obj(d.get("fields"), "fields")
    if not raw_fields:
        raise ConfigError("fields: define at least one field")
    fields = {name: _field(name, spec, lcols, rcols) for name, spec in raw_fields.items()}
    key = _names(d.get("key", []), "key", fields)
    compare = _names(d.get("compare", []), "compare", fields)
    raw_passes = d.get("passes")
    if not isinstance(raw_passes, list) or not raw_passes:
        raise ConfigError("passes: list at least one pass")
    passes = tuple(_pass(i, p, fields) for i, p in enumerate(raw_passes))
    seen: set[str] = set()
    for i, p in enumerate(passes):
        if p.name in seen:
            raise ConfigError(f"passes[{i}].name: {p.name!r} is used twice")
        seen.add(p.name)
    stake = {k: v for k, v in _obj(d.get("stake", {}), "stake").items()}
    _unknown_keys(stake, {"amount", "quantity", "price"}, "stake")
    for k, v in stake.items():
        if v not in fields:
            raise ConfigError(f"stake.{k}: unknown field {v!r}")
        if not fields[v].numeric:
            raise ConfigError(f"stake.{k}: {v!r} is not a number")
    currency = d.get("currency")
    if currency is not None and currency not in fields:
        raise ConfigError(f"currency: unknown field {currency!r}")
    coverage = _names(d.get("coverage", []), "coverage", fields)
    codes = dict(_obj(d.get("missing_codes", {}), "missing_codes"))
    for k, v in codes.items():
        if k not in ("MISSING_INTERNAL", "MISSING_EXTERNAL", "DUPLICATE_KEY"):
            raise ConfigError(f"missing_codes.{k}: one of MISSING_INTERNAL, MISSING_EXTERNAL, DUPLICATE_KEY")
        if not isinstance(v, str) or not 1 <= len(v) <= 16:
            raise ConfigError(f"missing_codes.{k}: a reason code of 1 to 16 characters")
    return ReconConfig(
        left,
        right,
        fields,
        key,
        compare,
        passes,
        stake,
        currency,
        coverage,
        codes,
        str(d.get("description", "")),
    )
