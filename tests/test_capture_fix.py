"""FIX drop-copy capture: the log layouts, fills aggregating by order, corrections and cancels as versions,
ExecIDs never captured twice, and truncated or altered messages rejected with their line.

The logs under tests/fixtures/trades are hand-made (make_fix_logs.py writes them with simplefix, so their
BodyLength and CheckSum are right where they should be and wrong where they should not).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Trade, TradeVersion
from app.models.enums import Role, TradeStatus
from app.services.capture import import_trades
from app.services.capture.fix import iter_messages, read_log
from app.services.db import Database
from app.services.errors import ValidationFailed
from app.services.permissions import Actor

from .test_capture_refdata import FIXTURES, TODAY, build_reference, counts, trade_by_ref

CLERK = Actor(user_id=None, username="test-clerk", role=Role.CLERK)


def _versions(db: Database, ref: str) -> list[tuple[int, str, str | None]]:
    with db.read() as s:
        return [
            (v.fo_version, v.action.value, v.source_ref)
            for v in s.scalars(
                select(TradeVersion)
                .join(Trade)
                .where(Trade.trade_ref == ref)
                .order_by(TradeVersion.fo_version)
            )
        ]


@pytest.fixture
def ref_db(sqlite_db: Database) -> Database:
    build_reference(sqlite_db)
    return sqlite_db


def test_quickfix_log_partial_fills_aggregate_by_order(db: Database, users) -> None:
    build_reference(db)
    report = import_trades(db, users["clerk1"], FIXTURES / "quickfix_messages.log", today=TODAY)
    assert (
        report.format,
        report.lines,
        report.accepted,
        report.duplicates,
        report.skipped,
        report.rejected,
    ) == ("fix", 7, 3, 1, 3, 0)
    assert [(i.line, i.status) for i in report.issues] == [
        (1, "skipped"),
        (2, "skipped"),
        (3, "skipped"),
        (7, "duplicate"),
    ]
    assert "Logon" in report.issues[0].reason and "Heartbeat" in report.issues[1].reason
    assert "ExecType 0 (New) carries no execution" in report.issues[2].reason
    assert "ExecID E-1 was already captured" in report.issues[3].reason
    t = trade_by_ref(db, "OMS-ORD-1")
    # 100 at 189.20 and 200 at 189.35: 300 at the exact weighted average 189.30, gross from the fills.
    assert (t.quantity, t.price, t.gross_amount, t.side.value) == (
        Decimal("300"),
        Decimal("189.30000000"),
        Decimal("56790.0000"),
        "BUY",
    )
    assert (t.status, t.source, t.order_ref, t.account_code, t.counterparty_code) == (
        TradeStatus.VALIDATED,
        "FIX:OMS",
        "CORD-1",
        "ACC1",
        "CP1",
    )
    assert t.trade_time == dt.datetime(2026, 11, 19, 14, 30, 0, 123000, tzinfo=dt.UTC)  # the first fill's
    assert _versions(db, "OMS-ORD-1") == [(1, "NEW", "E-1"), (2, "AMEND", "E-2")]
    # The counterparty named by its LEI (447=N); the SettlDate sent (64) agrees with the computed one.
    sap = trade_by_ref(db, "OMS-ORD-2")
    assert (sap.counterparty_code, sap.settlement_date, sap.status, sap.side.value) == (
        "CP1",
        dt.date(2026, 11, 23),
        TradeStatus.VALIDATED,
        "SELL",
    )


def test_quickfixj_log_corrections_and_cancels_make_versions(db: Database, users) -> None:
    build_reference(db)
    report = import_trades(db, users["clerk1"], FIXTURES / "quickfixj_session.log", today=TODAY)
    assert (report.accepted, report.skipped, report.trades_created, report.trades_cancelled) == (5, 1, 2, 1)
    msft = trade_by_ref(db, "OMS-ORD-3")
    # Fill 425.50 corrected (150=G) to 425.10: 100 at 425.00 + 100 at 425.10.
    assert (msft.quantity, msft.price, msft.gross_amount, msft.fo_version) == (
        Decimal("200"),
        Decimal("425.05000000"),
        Decimal("85010.0000"),
        3,
    )
    assert _versions(db, "OMS-ORD-3") == [(1, "NEW", "E-10"), (2, "AMEND", "E-11"), (3, "AMEND", "E-12")]
    cancelled = trade_by_ref(db, "OMS-ORD-4")
    assert cancelled.status == TradeStatus.CANCELLED and cancelled.quantity == Decimal("10")
    assert _versions(db, "OMS-ORD-4") == [(1, "NEW", "E-20"), (2, "CANCEL", "E-21")]


def test_raw_soh_log_rejects_altered_and_truncated_messages_with_their_line(ref_db: Database) -> None:
    report = import_trades(ref_db, CLERK, FIXTURES / "raw_soh.fix", today=TODAY)
    assert (report.lines, report.accepted, report.rejected) == (4, 2, 2)  # two messages on line 1
    rejected = [i for i in report.issues if i.status == "rejected"]
    assert [(i.line, i.code) for i in rejected] == [(2, "FIX_GARBLED"), (3, "FIX_GARBLED")]
    assert "CheckSum (10) is 125 but the message sums to 131" in rejected[0].reason
    assert "truncated: BodyLength (9) announces 211 bytes" in rejected[1].reason
    assert trade_by_ref(ref_db, "OMS-ORD-6").quantity == Decimal("10")
    assert trade_by_ref(ref_db, "OMS-ORD-7").side.value == "SELL"


def test_fix42_pipe_log_with_exec_trans_type_symbol_and_client_id(ref_db: Database) -> None:
    report = import_trades(ref_db, CLERK, FIXTURES / "fix42_pipe.log", today=TODAY)
    assert (report.lines, report.repair, report.rejected) == (4, 4, 0)  # CP2 has no SSI in London: repair
    vod = trade_by_ref(ref_db, "OMS-ORD-5")
    # 1000 at 0.7510 cancelled (20=1), 3000 at 0.7520 corrected (20=2) to 0.7500.
    assert (vod.isin, vod.account_code, vod.counterparty_code) == ("GB00BH4HKS39", "ACC1", "CP2")
    assert (vod.quantity, vod.price, vod.gross_amount, vod.fees) == (
        Decimal("3000"),
        Decimal("0.75000000"),
        Decimal("2250.0000"),
        Decimal("11.2500"),  # UK stamp duty
    )
    assert vod.exception_codes == "SSI_MISSING"
    assert [a for _, a, _ in _versions(ref_db, "OMS-ORD-5")] == ["NEW", "AMEND", "AMEND", "AMEND"]


def test_exec_ids_already_captured_create_nothing_and_new_fills_extend_the_order(
    db: Database, users, tmp_path: Path
) -> None:
    build_reference(db)
    first = (FIXTURES / "quickfix_messages.log").read_bytes()
    import_trades(db, users["clerk1"], FIXTURES / "quickfix_messages.log", today=TODAY)
    before = counts(db)
    # The drop-copy log grew during the day: the same messages again, plus one more fill of ORD-1.
    fill = next(m for _, m, _ in iter_messages(first) if m and b"17=E-2\x01" in m)
    extra = _reframed(_reframed(fill, b"17=E-2\x01", b"17=E-9\x01"), b"32=200\x01", b"32=700\x01")
    grown = tmp_path / "quickfix_messages.log"
    grown.write_bytes(first + b"20261119-16:00:00.000 : " + extra + b"\n")
    report = import_trades(db, users["clerk1"], grown, today=TODAY)
    assert (report.duplicates, report.accepted, report.trades_amended, report.trades_created) == (4, 1, 1, 0)
    assert counts(db)["trade_versions"] == before["trade_versions"] + 1
    t = trade_by_ref(db, "OMS-ORD-1")
    # The order's earlier fills were replayed from its versions: 100 at 189.20, 200 at 189.35, 700 at 189.35.
    assert (t.quantity, t.gross_amount, t.fo_version) == (Decimal("1000"), Decimal("189335.0000"), 3)
    assert _versions(db, "OMS-ORD-1")[-1] == (3, "AMEND", "E-9")


def test_a_correction_of_an_unknown_execution_is_rejected(ref_db: Database, tmp_path: Path) -> None:
    data = (FIXTURES / "quickfixj_session.log").read_bytes()
    # Only the correction of E-11 (line 4), without the fill it corrects.
    only = [ln for ln in data.split(b"\n") if b"17=E-12\x01" in ln]
    path = tmp_path / "x.log"
    path.write_bytes(b"\n".join(only) + b"\n")
    report = import_trades(ref_db, CLERK, path, today=TODAY)
    assert report.rejected == 1 and report.issues[0].code == "UNKNOWN_TRADE"
    assert (
        "corrects execution E-11 of order OMS-ORD-3, which OpsDesk never received" in report.issues[0].reason
    )


def test_log_layouts_are_framed_alike() -> None:
    a = read_log((FIXTURES / "quickfix_messages.log").read_bytes(), "a")
    b = read_log((FIXTURES / "quickfixj_session.log").read_bytes(), "b")
    c = read_log((FIXTURES / "fix42_pipe.log").read_bytes(), "c")
    assert [r.exec_id for r in a.reports] == ["E-1", "E-2", "E-3", "E-1"]
    assert [r.kind for r in b.reports] == ["FILL", "FILL", "CORRECT", "FILL", "CANCEL"]
    assert [(r.kind, r.exec_ref_id) for r in c.reports] == [
        ("FILL", ""),
        ("FILL", ""),
        ("CANCEL", "X-1"),
        ("CORRECT", "X-2"),
    ]
    assert a.reports[2].cpty_lei == "5493001KJTIIGC8Y1R12" and c.reports[0].cpty_code == "CP2"


def test_a_file_without_fix_messages_is_refused(ref_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "drop.log"
    path.write_text("2026-11-19 session started\n2026-11-19 session ended\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="it holds no FIX message"):
        import_trades(ref_db, CLERK, path, today=TODAY)
    assert counts(ref_db)["trades"] == 0


def _reframed(msg: bytes, old: bytes, new: bytes) -> bytes:
    """A copy of an SOH message with ``old`` replaced by ``new`` and its BodyLength and CheckSum made right."""
    body = msg[msg.index(b"\x0135=") + 1 : msg.rindex(b"10=")].replace(old, new)
    head = b"8=FIX.4.4\x019=" + str(len(body)).encode() + b"\x01"
    return head + body + b"10=%03d\x01" % (sum(head + body) % 256)


def test_fills_for_a_trade_past_validation_are_refused(ref_db: Database, tmp_path: Path) -> None:
    import_trades(ref_db, CLERK, FIXTURES / "quickfixj_session.log", today=TODAY)
    with ref_db.write() as s:
        s.execute(Trade.__table__.update().where(Trade.trade_ref == "OMS-ORD-3").values(status="AFFIRMED"))
    fill = next(
        m
        for _, m, _ in iter_messages((FIXTURES / "quickfixj_session.log").read_bytes())
        if m and b"17=E-10\x01" in m
    )
    path = tmp_path / "late.log"
    path.write_bytes(b"20261119-17:00:00.000: " + _reframed(fill, b"17=E-10\x01", b"17=E-99\x01") + b"\n")
    report = import_trades(ref_db, CLERK, path, today=TODAY)
    assert report.rejected == 1 and report.issues[0].code == "TRADE_LOCKED"
    assert "trade OMS-ORD-3 is AFFIRMED and cannot be extended by a fill by FIX" in report.issues[0].reason
    assert trade_by_ref(ref_db, "OMS-ORD-3").quantity == Decimal("200")
