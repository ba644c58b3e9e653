"""The demo book on both backends: deterministic, every lifecycle state, valid identifiers, real securities on their
markets, exact amounts, positions and balances equal to their movements, external statements that disagree with
the book exactly where the generator says, one audit entry, refused on a second run and for a clerk."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from app.models import (
    Account,
    AuditEntry,
    Base,
    CashBalance,
    CashMovement,
    ChangeFeedEntry,
    Counterparty,
    InstructionTrade,
    Instrument,
    Market,
    Position,
    SecuritiesMovement,
    SettlementInstruction,
    Statement,
    StatementLine,
    Trade,
    TradeException,
    TradeVersion,
)
from app.models.enums import AssetClass, ChangeAction, Role, StatementKind, TradeStatus
from app.services import audit, auth, calendars, demo, demo_data
from app.services.capture import validation as capture_validation
from app.services.db import Database
from app.services.errors import AuthenticationFailed, PermissionDenied, ValidationFailed
from app.services.identifiers import is_valid_bic, is_valid_isin, is_valid_lei
from app.services.permissions import SYSTEM, Actor
from app.services.trade_search import include_object

from .conftest import pg_clone, sqlite_copy

N = 2_000
SEED = 20261130
# A Monday: the last ten business days hold Thanksgiving on the US calendar and Veterans Day (Fedwire closed).
TODAY = dt.date(2026, 11, 30)
AS_OF = dt.datetime(2026, 11, 30, 6, 0, tzinfo=dt.UTC)
PASSWORD = "opsdesk-demo"


def _build(db: Database, actor: Actor = SYSTEM, **kw: object) -> demo.DemoSummary:
    args: dict[str, object] = {"trades": N, "seed": SEED, "today": TODAY, "password": PASSWORD}
    args.update(kw)
    return demo.build_demo(db, actor, **args)  # type: ignore[arg-type]


def _trade_digest(db: Database) -> str:
    """A hash of every business field of every trade, in id order: equal digests, equal books."""
    cols = [
        Trade.id,
        Trade.trade_ref,
        Trade.fo_version,
        Trade.isin,
        Trade.account_code,
        Trade.counterparty_code,
        Trade.side,
        Trade.quantity,
        Trade.price,
        Trade.currency,
        Trade.gross_amount,
        Trade.commission,
        Trade.fees,
        Trade.net_amount,
        Trade.trade_date,
        Trade.trade_time,
        Trade.settlement_date,
        Trade.status,
        Trade.exception_codes,
        Trade.allocated_at,
        Trade.confirmed_at,
        Trade.affirmed_at,
        Trade.created_at,
        Trade.updated_at,
    ]
    h = hashlib.sha256()
    with db.read() as s:
        for row in s.execute(select(*cols).order_by(Trade.id)):
            h.update(repr(tuple(str(v) for v in row)).encode())
    return h.hexdigest()


@pytest.fixture
def fresh_db(request: pytest.FixtureRequest, db: Database, tmp_path: Path) -> Iterator[Database]:
    """A second empty, migrated database on the same backend as ``db``."""
    if db.backend == "sqlite":
        other = sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path / "second.sqlite")
        yield other
        other.dispose()
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    template = request.getfixturevalue("pg_template")
    with pg_clone(admin_url, template, f"opsdesk_demo_{uuid.uuid4().hex[:8]}") as other:
        yield other


def test_same_seed_and_date_give_the_same_book(db: Database, fresh_db: Database) -> None:
    first = _build(db)
    second = _build(
        fresh_db, password=None
    )  # passwords are the only random part, and they are not in the book
    assert first.counts == second.counts
    assert first.statuses == second.statuses
    assert first.differences.equals(second.differences)
    assert _trade_digest(db) == _trade_digest(fresh_db)
    with db.read() as s1, fresh_db.read() as s2:
        for model, order in ((StatementLine, StatementLine.id), (SecuritiesMovement, SecuritiesMovement.id)):
            rows1 = [tuple(map(str, r)) for r in s1.execute(select(model.__table__).order_by(order))]
            rows2 = [tuple(map(str, r)) for r in s2.execute(select(model.__table__).order_by(order))]
            assert rows1 == rows2, model.__tablename__
    # A different seed is a different book.
    other = demo.generate_book(trades=N, seed=SEED + 1, today=TODAY)
    assert other.statuses != first.statuses


def test_book_content(db: Database) -> None:
    summary = _build(db)
    assert summary.counts["trades"] == N
    assert 250 <= summary.counts["instruments"] <= 400
    assert 45 <= summary.counts["counterparties"] <= 60
    assert 25 <= summary.counts["accounts"] <= 40
    with db.read() as s:
        # Every lifecycle state, most trades settled or instructed.
        statuses = Counter(s.scalars(select(Trade.status)).all())
        assert set(statuses) == set(TradeStatus)
        assert statuses[TradeStatus.SETTLED] + statuses[TradeStatus.INSTRUCTED] > N / 2
        assert dict(statuses) == {TradeStatus(k): v for k, v in summary.statuses.items() if v}

        # Identifiers: every ISIN, LEI and BIC in the reference data passes its check.
        instruments = s.scalars(select(Instrument)).all()
        assert all(is_valid_isin(i.isin) for i in instruments)
        assert {i.asset_class for i in instruments} == set(AssetClass)
        for cp in s.scalars(select(Counterparty)):
            assert is_valid_lei(cp.lei) and is_valid_bic(cp.bic) and cp.bic[4:6] == cp.country
        assert all(a.lei is None or is_valid_lei(a.lei) for a in s.scalars(select(Account)))
        assert {a.kyc_status.value for a in s.scalars(select(Account))} >= {"APPROVED", "PENDING", "EXPIRED"}
        for m in s.scalars(select(Market)):
            assert m.csd_bic and is_valid_bic(m.csd_bic)

        # Real securities under their real identifiers, currencies and markets.
        by_isin = {i.isin: i for i in instruments}
        real = [sec for sec in demo_data.REAL_SECURITIES if sec.maturity is None or sec.maturity > TODAY]
        assert len(real) >= 20
        for sec in real:
            inst = by_isin[sec.isin]
            assert (inst.name, inst.currency, inst.market.mic) == (sec.name, sec.currency, sec.mic)
        for isin, mic in demo_data.NAMED_REAL.items():
            assert by_isin[isin].market.mic == mic
        assert by_isin["US0378331005"].settlement_cycle == 1  # US T+1 since May 2024
        assert by_isin["DE0007164600"].settlement_cycle == 2  # EU T+2 until October 2027
        assert by_isin["DE0007164600"].market.csd_bic == "DAKVDEFF"
        assert by_isin["NL0010273215"].market.csd_bic == "NECINL2A"
        assert by_isin["GB0005405286"].market.csd_bic == "CRSTGB22"

        # Only trades in repair for a bad ISIN carry an invalid one; repair codes are trade capture's.
        trades = s.scalars(select(Trade).order_by(Trade.id)).all()
        for t in trades:
            assert is_valid_isin(t.isin) == ("ISIN_CHECK" not in t.exception_codes)
        repair_codes = {c for t in trades for c in t.exception_codes.split(",") if c}
        assert repair_codes <= set(capture_validation.REASONS)
        assert {"ISIN_CHECK", "PRICE_TOLERANCE", "KYC_NOT_APPROVED"} <= repair_codes
        open_exceptions = defaultdict(set)
        for e in s.scalars(select(TradeException).where(TradeException.cleared_at.is_(None))):
            open_exceptions[e.trade_id].add(e.code)
        for t in trades:
            codes = set(filter(None, t.exception_codes.split(",")))
            assert codes == open_exceptions.get(t.id, set())
            assert bool(codes) == (t.status == TradeStatus.REPAIR)

        # Trade dates in the market's last ten business days; settlement dates from the market calendar, with the
        # market's extra closures (Fedwire) read from market_holidays.
        windows = {
            m.mic: calendars.previous_business_days(m.mic, TODAY, 10, s) for m in s.scalars(select(Market))
        }
        for t in trades:
            if t.instrument_id is None:
                assert t.settlement_date is None
                continue
            inst = by_isin[t.isin]
            assert t.trade_date in windows[inst.market.mic]
            expected = calendars.settlement_date(inst.market.mic, t.trade_date, inst.settlement_cycle, s)
            assert t.settlement_date == expected, t.trade_ref
        assert any(
            t.trade_date == dt.date(2026, 11, 25) and t.settlement_date == dt.date(2026, 11, 27)
            for t in trades
            if by_isin.get(t.isin) and by_isin[t.isin].market.mic in ("XNAS", "XNYS")
        )

        # Exact amounts: gross = quantity x price x contract size (bonds / 100), to the currency's minor unit (half
        # even, as capture's enrichment does); commission and fees in whole minor units; net = gross +/- commission
        # + fees, so every amount is one a custodian can pay.
        for t in trades:
            inst = by_isin.get(t.isin)
            if inst is None:
                continue
            gross = t.quantity * t.price * inst.contract_size
            if inst.asset_class in (AssetClass.GOVT_BOND, AssetClass.CORP_BOND):
                gross /= 100
            minor = Decimal(1) if t.currency == "JPY" else Decimal("0.01")
            assert t.gross_amount == gross.quantize(minor, ROUND_HALF_EVEN), t.trade_ref
            assert t.commission == t.commission.quantize(minor) and t.fees == t.fees.quantize(minor)
            sign = 1 if t.side.value == "BUY" else -1
            assert t.net_amount == t.gross_amount + sign * (t.commission + t.fees)
            assert t.commission > 0 or inst.asset_class == AssetClass.GOVT_BOND
            assert t.fees >= 0
        # UK stamp duty is charged on purchases of UK shares, and only there.
        uk_buys = [
            t
            for t in trades
            if t.side.value == "BUY"
            and t.isin in by_isin
            and by_isin[t.isin].market.mic == "XLON"
            and by_isin[t.isin].asset_class == AssetClass.EQUITY
        ]
        assert uk_buys and all(t.fees > 0 for t in uk_buys)

        # Timestamps: timezone-aware UTC, in lifecycle order, before the book's 06:00 UTC.
        for t in trades:
            stamps = [t.trade_time, t.created_at, t.allocated_at, t.confirmed_at, t.affirmed_at]
            present = [x for x in stamps if x is not None]
            assert all(x.tzinfo is not None and x.utcoffset() == dt.timedelta(0) for x in present)
            assert present == sorted(present) and max(present) < AS_OF and t.updated_at < AS_OF
            if t.status == TradeStatus.REPAIR:
                assert t.allocated_at is None
            if t.status in (TradeStatus.AFFIRMED, TradeStatus.INSTRUCTED, TradeStatus.SETTLED):
                assert t.affirmed_at is not None

        # Versions: NEW first, numbered 1..fo_version, a cancel last for cancelled trades.
        versions = defaultdict(list)
        for v in s.scalars(select(TradeVersion).order_by(TradeVersion.trade_id, TradeVersion.fo_version)):
            versions[v.trade_id].append(v)
        for t in trades:
            vs = versions[t.id]
            assert [v.fo_version for v in vs] == list(range(1, t.fo_version + 1))
            assert vs[0].action.value == "NEW" and vs[0].payload["trade_ref"] == t.trade_ref
            assert (vs[-1].action.value == "CANCEL") == (t.status == TradeStatus.CANCELLED)
        assert any(len(vs) > 1 and vs[1].action.value == "AMEND" for vs in versions.values())

        # Instructions: one per instructed (or later) trade, its status and reason codes matching the trade's.
        links = dict(s.execute(select(InstructionTrade.trade_id, InstructionTrade.instruction_id)).all())
        instructions = {i.id: i for i in s.scalars(select(SettlementInstruction))}
        expected_status = {
            TradeStatus.SETTLED: {"SETTLED"},
            TradeStatus.PARTIALLY_SETTLED: {"PARTIALLY_SETTLED"},
            TradeStatus.FAILED: {"FAILED"},
            TradeStatus.INSTRUCTED: {"INSTRUCTED", "MATCHED"},
        }
        for t in trades:
            is_future = by_isin.get(t.isin) is not None and by_isin[t.isin].asset_class == AssetClass.FUTURE
            if t.status in expected_status and not is_future:
                ins = instructions[links[t.id]]
                assert ins.status.value in expected_status[t.status]
                assert (ins.quantity, ins.settlement_amount, ins.intended_settlement_date) == (
                    t.quantity,
                    abs(t.net_amount),
                    t.settlement_date,
                )
                assert ins.our_ssi_id == t.our_ssi_id and ins.their_ssi_id == t.their_ssi_id is not None
                if t.status == TradeStatus.FAILED:
                    assert ins.reason_code in {"LACK", "MONY", "CMIS", "DDAT", "DQUA", "DMON"}
                if t.status == TradeStatus.PARTIALLY_SETTLED:
                    assert 0 < ins.settled_quantity < ins.quantity
                if t.status == TradeStatus.SETTLED:
                    assert ins.settled_quantity == ins.quantity and ins.actual_settlement_date < TODAY
            elif t.status != TradeStatus.CANCELLED:
                assert t.id not in links


def test_positions_and_balances_equal_their_movements(db: Database) -> None:
    _build(db)
    with db.read() as s:
        sec = defaultdict(lambda: [Decimal(0), Decimal(0)])
        kinds = Counter()
        for acct, inst, kind, qty in s.execute(
            select(
                SecuritiesMovement.account_id,
                SecuritiesMovement.instrument_id,
                SecuritiesMovement.kind,
                SecuritiesMovement.quantity,
            )
        ):
            kinds[kind.value] += 1
            if kind.value != "SETTLED":
                sec[acct, inst][0] += qty
            if kind.value != "TRADED":
                sec[acct, inst][1] += qty
        assert kinds["TRADED"] and kinds["SETTLED"] and kinds["DEPOSIT"]
        positions = {
            (p.account_id, p.instrument_id): [p.traded_quantity, p.settled_quantity]
            for p in s.scalars(select(Position))
        }
        assert positions == {k: v for k, v in sec.items()}
        assert any(t != st for t, st in positions.values())  # traded and settled differ for pending trades

        cash = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for acct, ccy, kind, amount in s.execute(
            select(CashMovement.account_id, CashMovement.currency, CashMovement.kind, CashMovement.amount)
        ):
            if kind.value != "SETTLED":
                cash[acct, ccy][0] += amount
            if kind.value != "TRADED":
                cash[acct, ccy][1] += amount
        balances = {
            (b.account_id, b.currency): [b.traded_amount, b.settled_amount]
            for b in s.scalars(select(CashBalance))
        }
        assert balances == dict(cash)
        assert len({ccy for _, ccy in balances}) >= 4

        # Settled movements of a trade add up to what its instruction settled.
        settled = dict(
            s.execute(
                select(SecuritiesMovement.instruction_id, func.sum(SecuritiesMovement.quantity))
                .where(SecuritiesMovement.kind == "SETTLED", SecuritiesMovement.instruction_id.is_not(None))
                .group_by(SecuritiesMovement.instruction_id)
            ).all()
        )
        for ins in s.scalars(select(SettlementInstruction).where(SettlementInstruction.settled_quantity > 0)):
            assert abs(settled[ins.id]) == ins.settled_quantity


def test_external_statements_disagree_where_the_generator_says(db: Database) -> None:
    summary = _build(db)
    diffs = summary.differences
    kinds = set(zip(diffs["source"], diffs["difference"], strict=True))
    assert kinds >= {
        ("TRADE_CONFIRMATIONS", d) for d in ("QUANTITY", "PRICE", "SETTLEMENT_DATE", "MISSING", "EXTRA")
    } | {("HOLDINGS", d) for d in ("QUANTITY", "MISSING", "EXTRA")} | {
        ("CASH", d) for d in ("AMOUNT", "MISSING", "EXTRA")
    }
    confirmations = diffs[diffs["source"] == "TRADE_CONFIRMATIONS"]
    injected = confirmations[confirmations["difference"] != "BOOK_ERROR"]
    assert 0.01 <= len(injected) / N <= 0.03  # about 2 % of the trades

    with db.read() as s:
        stmts = {st.statement_ref: st for st in s.scalars(select(Statement))}
        assert {st.kind for st in stmts.values()} >= {
            StatementKind.TRADE_CONFIRMATIONS,
            StatementKind.HOLDINGS,
            StatementKind.CASH,
        }
        lines = s.scalars(select(StatementLine)).all()
        by_place = {(ln.statement_id, ln.line_no): ln for ln in lines}
        kind_of = {st.id: st.kind.value for st in stmts.values()}
        trades = {t.trade_ref: t for t in s.scalars(select(Trade))}

        def line(row: object) -> StatementLine:
            return by_place[stmts[row.statement_ref].id, row.line_no]  # type: ignore[attr-defined]

        # Each changed line says so, and carries the external value the answer gives.
        for row in diffs[diffs["line_no"].notna()].itertuples():
            ln = line(row)
            assert ln.extra["demo_difference"] == row.difference
            if row.difference == "QUANTITY":
                assert ln.quantity == Decimal(row.external) != Decimal(row.book)
            if row.difference == "PRICE":
                assert ln.price == Decimal(row.external)
                assert trades[row.trade_ref].price == Decimal(row.book)
            if row.difference == "SETTLEMENT_DATE":
                assert str(ln.value_date) == row.external != str(trades[row.trade_ref].settlement_date)
            if row.difference == "AMOUNT":
                assert ln.amount == Decimal(row.external)
        marked = sum(1 for ln in lines if ln.extra.get("demo_difference"))
        assert marked == int(diffs["line_no"].notna().sum())

        # Confirmations: one line per trade the counterparty knows, minus the missing, plus the extra.
        known = sum(
            1 for t in trades.values() if t.status != TradeStatus.CANCELLED and t.counterparty_id is not None
        )
        n_conf = sum(1 for ln in lines if kind_of[ln.statement_id] == "TRADE_CONFIRMATIONS")
        count = Counter(confirmations["difference"])
        assert n_conf == known - count["MISSING"] + count["EXTRA"]

        # Holdings: one line per settled non-zero position (not futures), minus missing, plus extra.
        futures = set(s.scalars(select(Instrument.id).where(Instrument.asset_class == AssetClass.FUTURE)))
        held = sum(
            1
            for p in s.scalars(select(Position))
            if p.settled_quantity != 0 and p.instrument_id not in futures
        )
        hcount = Counter(diffs[diffs["source"] == "HOLDINGS"]["difference"])
        n_hold = sum(1 for ln in lines if kind_of[ln.statement_id] == "HOLDINGS")
        assert n_hold == held - hcount["MISSING"] + hcount["EXTRA"]

        # Cash: each statement balances, and the bank's last closing balance differs from the book's settled
        # balance by exactly the injected differences of that account and currency.
        line_sum = defaultdict(Decimal)
        for ln in lines:
            line_sum[ln.statement_id] += ln.amount or 0
        last: dict[tuple[int, str], Statement] = {}
        for st in stmts.values():
            if st.kind == StatementKind.CASH:
                assert st.closing_balance - st.opening_balance == line_sum[st.id]
                key = (st.account_id, st.currency)
                if key not in last or st.statement_date > last[key].statement_date:
                    last[key] = st
        codes = {a.code: a.id for a in s.scalars(select(Account))}
        expected_gap = defaultdict(Decimal)
        for row in diffs[diffs["source"] == "CASH"].itertuples():
            book = Decimal(row.book) if row.book is not None else Decimal(0)
            external = Decimal(row.external) if row.external is not None else Decimal(0)
            expected_gap[codes[row.account], row.currency] += external - book
        balances = {(b.account_id, b.currency): b.settled_amount for b in s.scalars(select(CashBalance))}
        for key, st in last.items():
            assert st.closing_balance - balances[key] == expected_gap.get(key, 0), key


def test_audit_entry_and_refusal_of_a_second_run(db: Database) -> None:
    summary = _build(db)
    with db.read() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "demo.build")).all()
        assert len(entries) == 1
        assert entries[0].after["counts"] == summary.counts
        assert entries[0].after["seed"] == SEED
        assert entries[0].entity_type == "trades"
        feed = {f.entity_type: f for f in s.scalars(select(ChangeFeedEntry))}
        loaded = {table for table, n in summary.counts.items() if n}
        assert set(feed) >= loaded  # one BULK row per table loaded, so every open pane reloads
        assert all(feed[table].action == ChangeAction.BULK for table in loaded)
        assert audit.verify_chain(s).intact
        trades_before = s.scalar(select(func.count()).select_from(Trade))
    with pytest.raises(ValidationFailed, match="fresh database"):
        _build(db, seed=SEED + 1)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Trade)) == trades_before
        assert (
            s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "demo.build"))
            == 1
        )
    # The demo users can log in with the password the script set.
    assert auth.login(db, "clerk1", PASSWORD).role == Role.CLERK
    assert auth.login(db, "supervisor2", PASSWORD).role == Role.SUPERVISOR
    with pytest.raises(AuthenticationFailed):
        auth.login(db, "auditor", "wrong-password")
    assert demo.has_trades(db)


def test_random_passwords_when_none_is_given(db: Database) -> None:
    summary = _build(db, trades=50, password=None)
    users = {u.username: u for u in summary.users}
    assert set(users) == {"clerk1", "clerk2", "supervisor", "supervisor2", "admin", "auditor"}
    passwords = [u.password for u in users.values()]
    assert all(p and len(p) >= 12 for p in passwords) and len(set(passwords)) == len(passwords)
    assert auth.login(db, "admin", users["admin"].password).role == Role.ADMIN  # type: ignore[arg-type]
    info = summary.as_dict()
    assert json.loads(json.dumps(info))["users"][0]["password"] == summary.users[0].password
    assert info["counts"]["trades"] == 50


def test_a_clerk_may_not_build_and_existing_users_are_kept(db: Database, users: dict[str, Actor]) -> None:
    with pytest.raises(PermissionDenied):
        _build(db, users["clerk1"])
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Trade)) == 0
    summary = _build(db, users["admin"], trades=20)
    assert all(not u.created and u.password is None for u in summary.users)
    assert (
        auth.login(db, "clerk1", "correct-horse-9").role == Role.CLERK
    )  # the fixture's password still works
    with db.read() as s:
        assert s.scalar(select(AuditEntry.username).where(AuditEntry.action == "demo.build")) == "admin"


def test_reference_data_only(db: Database) -> None:
    summary = _build(db, trades=0)
    assert summary.counts["trades"] == 0 and summary.counts["instruments"] > 250
    assert not demo.has_trades(db)
    with pytest.raises(ValidationFailed, match="instruments"):
        _build(db, trades=10)


def _schema_snapshot(db: Database) -> dict[str, object]:
    insp = inspect(db.engine)
    out: dict[str, object] = {}
    for table in insp.get_table_names():
        out[table] = (
            sorted(
                (ix["name"], tuple(ix["column_names"]), bool(ix["unique"])) for ix in insp.get_indexes(table)
            ),
            sorted(
                (fk["name"], tuple(fk["constrained_columns"]), fk["referred_table"], str(fk.get("options")))
                for fk in insp.get_foreign_keys(table)
            ),
        )
    with db.engine.connect() as conn:
        # Expression indexes (the settlement-date sort) are not reflected above: compare their DDL too.
        if db.backend == "sqlite":
            ddl = conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' ORDER BY name"
            )
        else:
            ddl = conn.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname"
            )
        out["__ddl__"] = [tuple(r) for r in ddl]
    return out


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection", "ignore:autogenerate skipping")
def test_the_bulk_load_leaves_the_schema_as_migrated(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    # Force the big-table path (indexes and, on PostgreSQL, foreign keys dropped and rebuilt) on a small book.
    monkeypatch.setattr(demo, "BULK_INDEX_THRESHOLD", 500)
    dropped: list[str] = []
    original = demo._drop_secondary_indexes

    def spy(*args: object) -> list[str]:
        ddl = original(*args)  # type: ignore[arg-type]
        dropped.extend(ddl)
        return ddl

    monkeypatch.setattr(demo, "_drop_secondary_indexes", spy)
    before = _schema_snapshot(db)
    summary = _build(db, trades=600)
    assert summary.counts["trades"] == 600
    assert any("ix_trades_net_amount_id" in ddl for ddl in dropped)  # the path under test was taken
    assert _schema_snapshot(db) == before
    with db.engine.connect() as conn:
        opts = {"compare_type": True, "render_as_batch": True, "include_object": include_object}
        ctx = MigrationContext.configure(conn, opts=opts)
        assert compare_metadata(ctx, Base.metadata) == []
    # The rebuilt indexes and foreign keys hold: a blotter-style page uses them and a dangling reference is refused.
    with db.read() as s:
        page = s.execute(select(Trade.id).order_by(Trade.net_amount, Trade.id).limit(5)).all()
        assert len(page) == 5
    with pytest.raises(IntegrityError), db.write() as s:
        s.execute(
            text(
                "INSERT INTO trade_versions (trade_id, fo_version, action, source, received_at, payload) "
                "VALUES (999999, 1, 'NEW', 'X', :t, '{}')"
            ),
            {"t": dt.datetime(2026, 11, 30, tzinfo=dt.UTC).isoformat(sep=" ")},
        )
