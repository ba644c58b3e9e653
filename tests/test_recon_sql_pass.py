"""The narrow first pass of a run (``recon.prepass``: the exact fields compared in SQL, only the residue read in
full) gives exactly what the in-memory path gives, on both backends.

Each definition is stored twice under two names; one copy runs with the narrow pass, the other with it switched off,
over the same book, and everything a run leaves is compared: its summary (records, matches by pass, breaks by type,
new / still open / reopened / resolved), every break (type, status, records, differing fields with both values,
amount, currency, codes, and a fingerprint that is the same function of the same difference), the stored pairs in
order, and the ``recon_matches`` rows. The book has injected differences of every kind, tolerances exactly at their
boundary and just past it, missing values on one and on both sides, text that a careless concatenation would confuse,
duplicate keys on either side, a ``where`` filter, an ``as_of`` date, records a person took apart and matched by hand,
and three runs in a row with the data changed between them (a break closes, another appears, a resolved one comes
back). The default definitions run both ways over the demo book too.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from app.models import Break, ReconDefinition, ReconMatch, ReconRun, Statement, StatementLine, Trade, utcnow
from app.models.enums import StatementKind
from app.services import demo
from app.services.db import Database
from app.services.permissions import SYSTEM, Actor
from app.services.recon import definitions as defs
from app.services.recon import prepass
from app.services.recon.run import fingerprint, run_pairs, run_recon

from .conftest import PASSWORD
from .factories import trade_row

LATEST = dt.date(2026, 11, 20)

CONFIG: dict[str, Any] = {
    "left": {"source": "trades", "where": {"status": {"not_in": ["CANCELLED"]}}},
    "right": {"source": "statement_lines:TRADE_CONFIRMATIONS"},
    "fields": {
        "ref": {"left": "trade_ref", "right": "related_reference"},
        "isin": {"code": "DSEC"},
        "counterparty": {},
        "account": {"right": "account_identifier"},
        "quantity": {"type": "quantity", "code": "DQUA"},
        "price": {"type": "price", "tolerance": "rel=0.001", "code": "DDEA"},
        "amount": {"left": "net_amount", "right": "amount", "type": "money", "tolerance": "abs=0.01"},
        "settlement_date": {"right": "value_date", "type": "date", "tolerance": "days=1", "code": "DDAT"},
        "trade_date": {"type": "date"},
        "currency": {},
    },
    "key": ["ref"],
    "compare": [
        "isin",
        "counterparty",
        "account",
        "quantity",
        "price",
        "amount",
        "settlement_date",
        "trade_date",
        "currency",
    ],
    "passes": [
        {"name": "exact_ref", "kind": "pair", "keys": ["ref"], "duplicates": "report"},
        {
            "name": "composite",
            "kind": "pair",
            "keys": ["isin", "quantity", "trade_date"],
            "require": ["amount"],
        },
        {
            "name": "fills",
            "kind": "aggregate",
            "many": "left",
            "keys": ["isin", "trade_date"],
            "sum": ["quantity"],
        },
    ],
    "stake": {"amount": "amount", "quantity": "quantity", "price": "price"},
    "currency": "currency",
}

# The same book keyed on the order reference: three trades to an order, so duplicate keys on the left.
BY_ORDER = copy.deepcopy(CONFIG)
BY_ORDER["fields"]["ref"] = {"left": "order_ref", "right": "reference"}


def _variant(i: int, t: dict[str, Any]) -> list[dict[str, Any]]:
    """The confirmation line(s) of trade ``i``: a copy with one injected difference (or none), by ``i % 16``."""
    line = {
        "related_reference": t["trade_ref"],
        "reference": t["order_ref"] if i % 5 else None,
        "isin": t["isin"],
        "counterparty": t["counterparty_code"],
        "account_identifier": t["account_code"],
        "quantity": t["quantity"],
        "price": t["price"],
        "amount": t["net_amount"],
        "value_date": t["settlement_date"],
        "trade_date": t["trade_date"],
        "currency": t["currency"],
    }
    k = i % 16
    if k == 1:
        line["amount"] += Decimal("0.01")  # at the boundary: agrees
    elif k == 2:
        line["amount"] += Decimal("0.0101")  # just past it
    elif k == 3:
        line["price"] = t["price"] * Decimal("0.999")  # 0.1 % of the larger exactly (rel=0.001): agrees
    elif k == 4:
        line["price"] = t["price"] * Decimal("0.999") - Decimal("0.00000001")
    elif k == 5 and t["settlement_date"] is not None:
        line["value_date"] = t["settlement_date"] + dt.timedelta(days=1)  # inside the window
    elif k == 6 and t["settlement_date"] is not None:
        line["value_date"] = t["settlement_date"] - dt.timedelta(days=2)  # outside it
    elif k == 7:
        line["value_date"] = None  # missing on one side (both missing where the trade has none: agrees)
    elif k == 8:
        return [line, dict(line)]  # duplicate confirmation: never paired
    elif k == 9:
        return []  # never confirmed
    elif k == 10:
        line["quantity"] += 1
    elif k == 11:
        # The trade's account is "ACC,1": joined with commas, "CP1" + "ACC,1" would read as "CP1,ACC" + "1".
        line["counterparty"], line["account_identifier"] = f"{t['counterparty_code']},ACC", "1"
    elif k == 12:
        line["currency"] = None
    elif k == 13:
        line["related_reference"] = None  # no reference: the composite pass's
    elif k == 14:
        line["counterparty"] = "back\\slash, \"quoted\" 'x'"
    elif k == 15:
        line["isin"] = "XS0000000001"
    return [line]


def _book(db: Database, n: int = 160) -> None:
    rnd = random.Random(5)
    rows = [trade_row(i, rnd, latest=LATEST) for i in range(n)]
    for i in range(11, n, 16):
        rows[i]["account_code"] = "ACC,1"
    for i in range(n):  # one trade in four shares its order with others (duplicate keys keyed by order)
        rows[i]["order_ref"] = f"ORD{i // 8}" if i % 4 == 0 else f"ORD-U{i}"
    with db.write() as s:
        s.execute(insert(Trade), rows)
        stmts: dict[dt.date, int] = {}
        lines: list[dict[str, Any]] = []
        for i, t in enumerate(rows):
            for line in _variant(i, t):
                day = t["trade_date"]
                if day not in stmts:
                    st = Statement(
                        kind=StatementKind.TRADE_CONFIRMATIONS,
                        format="TEST",
                        account_identifier="ALL",
                        statement_date=day,
                        statement_ref=f"CONF-{day.isoformat()}",
                        warnings=[],
                        file_name="test",
                        content_hash=f"test-{day.isoformat()}",
                    )
                    s.add(st)
                    s.flush()
                    stmts[day] = st.id
                lines.append({**line, "statement_id": stmts[day], "line_no": len(lines) + 1, "extra": {}})
        # Confirmations of trades we never booked.
        for j in range(3):
            lines.append(
                {
                    "statement_id": stmts[min(stmts)],
                    "line_no": len(lines) + 1,
                    "related_reference": f"UNKNOWN-{j}",
                    "isin": "US0378331005",
                    "quantity": Decimal(7),
                    "amount": Decimal(70),
                    "extra": {},
                }
            )
        s.execute(insert(StatementLine), lines)


def _twin(db: Database, config: dict[str, Any], name: str) -> tuple[int, int]:
    """The definition stored twice: (narrow copy, in-memory copy)."""
    ids = []
    with db.write() as s:
        for suffix in ("narrow", "memory"):
            d = ReconDefinition(
                name=f"{name}-{suffix}",
                description=name,
                left_source=config["left"]["source"],
                right_source=config["right"]["source"],
                config=copy.deepcopy(config),
                is_active=True,
            )
            s.add(d)
            s.flush()
            ids.append(d.id)
    return ids[0], ids[1]


def _key(b: Break) -> list[Any]:
    """What describe() fingerprints a break by, rebuilt from what the break shows."""
    kind = b.break_type.value
    if kind == "FIELD_MISMATCH":
        return [b.internal_ref, b.external_ref, *(d["field"] for d in b.differences)]
    if kind == "DUPLICATE_KEY":
        return ["|".join("" if v is None else str(v) for v in b.differences[0]["key"].values())]
    return [b.internal_ref or b.external_ref]


def _outcome(db: Database, def_id: int, result: Any) -> dict[str, Any]:
    summary = result.as_dict()
    for k in ("run_id", "definition", "duration", "timings"):
        summary.pop(k)
    with db.read() as s:
        breaks = []
        for b in s.scalars(select(Break).where(Break.definition_id == def_id)):
            assert b.fingerprint == fingerprint(def_id, b.break_type.value, _key(b))
            breaks.append(
                json.dumps(
                    [
                        b.break_type.value,
                        b.status.value,
                        b.internal_ref,
                        b.external_ref,
                        b.differences,
                        str(b.amount),
                        b.currency,
                        b.root_cause,
                        b.category,
                        b.internal_record,
                        b.external_record,
                        b.as_of_date.isoformat(),
                        b.resolved_at is None,
                    ],
                    sort_keys=True,
                )
            )
        matches = [
            (m.pass_name, m.left_refs, m.right_refs)
            for m in s.scalars(
                select(ReconMatch).where(ReconMatch.run_id == result.run_id).order_by(ReconMatch.id)
            )
        ]
        stats = dict(s.scalar(select(ReconRun.stats).where(ReconRun.id == result.run_id)))
    stats.pop("definition")
    return {
        "summary": summary,
        "breaks": sorted(breaks),
        "pairs": run_pairs(db, SYSTEM, result.run_id),
        "matches": matches,
        "stats": stats,
    }


def _both(
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    ids: tuple[int, int],
    name: str,
    as_of: dt.date | None = None,
) -> dict[str, Any]:
    """Run the twin definitions, the narrow pass on the first, off on the second; their outcomes must be equal."""
    out = []
    for def_id, enabled in zip(ids, (True, False), strict=True):
        monkeypatch.setattr(prepass, "ENABLED", enabled)
        result = run_recon(db, SYSTEM, f"{name}-{'narrow' if enabled else 'memory'}", as_of=as_of)
        assert ("read_narrow" in result.timings) is enabled  # the narrow pass did run (and only there)
        out.append(_outcome(db, def_id, result))
    narrow, memory = out
    assert narrow == memory
    return narrow


def _pair_of(outcome: dict[str, Any], index: int) -> tuple[str, str]:
    return outcome["pairs"]["exact_ref"][index]


def _line_of(db: Database, ref: str) -> StatementLine:
    with db.read() as s:
        return s.scalars(select(StatementLine).where(StatementLine.related_reference == ref)).one()


@pytest.mark.parametrize("config", [CONFIG, BY_ORDER], ids=["by-trade", "by-order"])
def test_the_narrow_first_pass_gives_exactly_what_the_engine_gives(
    db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch, config: dict[str, Any]
) -> None:
    _book(db)
    ids = _twin(db, config, "book")
    first = _both(db, monkeypatch, ids, "book")
    s = first["summary"]
    # The book means something: every kind of break, and most records paired by the first pass.
    assert all(s["breaks"][k] > 0 for k in ("FIELD_MISMATCH", "MISSING_EXTERNAL", "MISSING_INTERNAL"))
    assert s["breaks"]["DUPLICATE_KEY"] > 0 and s["matched_by_pass"]["exact_ref"] > 0
    assert s["matched_by_pass"]["composite"] + s["matched_by_pass"]["fills"] > 0 or config is BY_ORDER
    with db.read() as ses:  # keyed by order: keys duplicated on the left too
        dups = [
            b for b in ses.scalars(select(Break).where(Break.definition_id == ids[0])) if b.internal_record
        ]
    assert config is CONFIG or any(len(b.internal_record.get("records", [])) > 1 for b in dups)
    fields = {d["field"] for b in first["breaks"] for d in json.loads(b)[4] if "field" in d}
    assert {"amount", "price", "settlement_date", "quantity", "isin", "currency", "counterparty"} <= fields

    # As of an earlier date: fewer records on both sides, the same answer both ways.
    _both(db, monkeypatch, ids, "book", as_of=LATEST - dt.timedelta(days=4))

    # A person takes a pair apart and matches two other records by hand (on both copies alike).
    apart = _pair_of(first, 0)
    missing = next(json.loads(b) for b in first["breaks"] if json.loads(b)[0] == "MISSING_EXTERNAL")
    extra = next(json.loads(b) for b in first["breaks"] if json.loads(b)[0] == "MISSING_INTERNAL")
    with db.write() as ses:
        for def_id in ids:
            ses.add(
                ReconMatch(
                    definition_id=def_id,
                    pass_name="exact_ref",
                    left_refs=[apart[0]],
                    right_refs=[apart[1]],
                    unmatched_at=utcnow(),
                )
            )
            ses.add(
                ReconMatch(
                    definition_id=def_id,
                    pass_name="manual",
                    left_refs=[missing[2]],
                    right_refs=[extra[3]],
                    matched_by_id=users["clerk1"].user_id,
                )
            )
    # The data changes: a mismatch is fixed (its break closes), a matched pair starts to differ.
    mismatch = next(json.loads(b) for b in first["breaks"] if json.loads(b)[0] == "FIELD_MISMATCH")
    fixed = _line_of(db, mismatch[2]) if config is CONFIG else None
    spoilt_values = {c: getattr(fixed, c) for c in _LINE_FIELDS} if fixed is not None else {}
    spoilt = _pair_of(first, 3)
    with db.write() as ses:
        if fixed is not None:
            trade = ses.scalars(select(Trade).where(Trade.trade_ref == mismatch[2])).one()
            ses.execute(
                update(StatementLine)
                .where(StatementLine.id == fixed.id)
                .values(
                    isin=trade.isin,
                    counterparty=trade.counterparty_code,
                    account_identifier=trade.account_code,
                    quantity=trade.quantity,
                    price=trade.price,
                    amount=trade.net_amount,
                    value_date=trade.settlement_date,
                    trade_date=trade.trade_date,
                    currency=trade.currency,
                )
            )
        ses.execute(
            update(Trade)
            .where(Trade.trade_ref == spoilt[0])
            .values(quantity=Trade.quantity + Decimal("0.000001"))
        )
    second = _both(db, monkeypatch, ids, "book")
    s2 = second["summary"]
    assert s2["manual"] == 2 and s2["resolved"] >= 1 and s2["new_breaks"] >= 1
    paired = [p for pairs in second["pairs"].values() for p in pairs]
    assert apart not in paired and not any(a == missing[2] for a, _ in paired)

    # The fixed line differs again as it did: its resolved break reopens, on both copies.
    if fixed is not None:
        with db.write() as ses:
            ses.execute(update(StatementLine).where(StatementLine.id == fixed.id).values(**spoilt_values))
        third = _both(db, monkeypatch, ids, "book")
        assert third["summary"]["reopened"] == 1


_LINE_FIELDS = (
    "isin",
    "counterparty",
    "account_identifier",
    "quantity",
    "price",
    "amount",
    "value_date",
    "trade_date",
    "currency",
)


def test_the_default_definitions_run_alike_both_ways_on_the_demo_book(
    db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    demo.build_demo(db, SYSTEM, trades=300, seed=11, today=dt.date(2026, 11, 30), password=PASSWORD)
    defs.ensure_default_definitions(db, SYSTEM)
    narrow_used = 0
    for name in defs.DEFAULTS:
        with db.read() as s:
            config = defs.find(s, name).config
        cfg = defs.validate(config)
        ids = _twin(db, config, f"d-{name}")
        if prepass.plan(cfg) is None:  # coverage, or no pair pass first: read in full, the fallback
            continue
        narrow_used += 1
        _both(db, monkeypatch, ids, f"d-{name}")
    assert narrow_used >= 2


def test_where_the_narrow_pass_does_not_apply_the_run_reads_in_full(
    db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    _book(db, n=40)
    covered = copy.deepcopy(CONFIG)
    covered["coverage"] = ["isin"]  # whether a record is covered depends on the whole other side
    assert prepass.plan(defs.validate(covered)) is None
    aggregate_first = copy.deepcopy(CONFIG)
    aggregate_first["passes"] = [CONFIG["passes"][2], *CONFIG["passes"][:2]]
    assert prepass.plan(defs.validate(aggregate_first)) is None
    for config, name in ((covered, "covered"), (aggregate_first, "aggregate-first")):
        ids = _twin(db, config, name)
        for enabled in (True, False):
            monkeypatch.setattr(prepass, "ENABLED", enabled)
            result = run_recon(db, SYSTEM, f"{name}-{'narrow' if enabled else 'memory'}")
            assert "read_narrow" not in result.timings
        assert _outcome_of(db, ids[0]) == _outcome_of(db, ids[1])


def _outcome_of(db: Database, def_id: int) -> list[Any]:
    with db.read() as s:
        return sorted(
            (b.break_type.value, b.internal_ref or "", b.external_ref or "", json.dumps(b.differences))
            for b in s.scalars(select(Break).where(Break.definition_id == def_id))
        )


def test_a_value_sql_cannot_write_exactly_is_left_to_the_engine(
    db: Database, users: dict[str, Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quantity beyond a double's exact integers (on SQLite the columnar read takes it exactly through sqlite3):
    the narrow pass pairs it as the engine does, with the same answer both ways."""
    _book(db, n=30)
    with db.write() as s:
        big = Decimal("12345678901.123456")  # 1.2e16 units of 1e-6: past 2^53
        ref = s.scalars(select(Trade.trade_ref).order_by(Trade.id)).first()
        s.execute(update(Trade).where(Trade.trade_ref == ref).values(quantity=big))
        s.execute(update(StatementLine).where(StatementLine.related_reference == ref).values(quantity=big))
    ids = _twin(db, CONFIG, "big")
    out = []
    for def_id, enabled in zip(ids, (True, False), strict=True):
        monkeypatch.setattr(prepass, "ENABLED", enabled)
        result = run_recon(db, SYSTEM, f"big-{'narrow' if enabled else 'memory'}")
        out.append(_outcome(db, def_id, result))
    assert out[0] == out[1]
    assert any(p[0] == ref for p in out[0]["pairs"]["exact_ref"])
