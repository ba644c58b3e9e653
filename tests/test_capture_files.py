"""Importing CSV and XLSX trade files: profiles, one transaction, nothing lost and nothing doubled.

The tests that write to the database run on SQLite and PostgreSQL (the bulk paths differ: executemany vs COPY);
the parsing cases run on SQLite.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from app.models import AuditEntry, ChangeFeedEntry, ImportBatch, Trade, TradeException, TradeVersion
from app.models.enums import ChangeAction, Role, TradeStatus
from app.services.capture import ImportCancelled, import_trades, known_profiles
from app.services.db import Database
from app.services.errors import PermissionDenied, ValidationFailed
from app.services.permissions import Actor

from .test_capture_refdata import (
    AAPL,
    HEADER,
    SAP,
    TODAY,
    build_reference,
    counts,
    line,
    trade_by_ref,
    write_csv,
)

CLERK = Actor(user_id=None, username="test-clerk", role=Role.CLERK)


@pytest.fixture
def ref_db(sqlite_db: Database) -> Database:
    build_reference(sqlite_db)
    return sqlite_db


# --- one file, one transaction, every line accounted for (both backends) ---------------------------------------------


def test_import_writes_trades_versions_exceptions_batch_and_audit(
    db: Database, users, tmp_path: Path
) -> None:
    build_reference(db)
    path = write_csv(
        tmp_path / "fo_20261119.csv",
        line("T1"),
        line("T2", side="SELL", qty="250", price="190.10"),
        "",
        line("T3", account="NOPE"),
        line("T4", qty="ten"),
        line("T5", isin=SAP, price="120", ccy="EUR"),
    )
    progress: list[tuple[int, int, str]] = []
    report = import_trades(
        db, users["clerk1"], path, today=TODAY, progress=lambda d, t, s: progress.append((d, t, s))
    )
    assert report.counts() == {
        "lines": 6,
        "accepted": 3,
        "repair": 1,
        "rejected": 1,
        "duplicates": 0,
        "skipped": 1,
        "trades_created": 4,
        "trades_amended": 0,
        "trades_cancelled": 0,
    }
    assert progress[-1][:2] == (100, 100) and [p[0] for p in progress] == sorted(p[0] for p in progress)
    with db.read() as s:
        trades = {t.trade_ref: t for t in s.scalars(select(Trade))}
        assert set(trades) == {"T1", "T2", "T3", "T5"}
        t1 = trades["T1"]
        assert (t1.status, t1.source, t1.source_ref, t1.fo_version, t1.version) == (
            TradeStatus.VALIDATED,
            "CSV:default",
            "fo_20261119.csv:2",
            1,
            1,
        )
        assert t1.trade_time == dt.datetime(2026, 11, 19, 14, 30, tzinfo=dt.UTC)
        assert t1.settlement_date == dt.date(2026, 11, 20) and t1.updated_by_id == users["clerk1"].user_id
        assert trades["T3"].status == TradeStatus.REPAIR and trades["T3"].exception_codes == "ACCOUNT_UNKNOWN"
        assert trades["T3"].settlement_date == dt.date(2026, 11, 20)  # enriched all the same
        versions = s.scalars(select(TradeVersion).order_by(TradeVersion.id)).all()
        assert [(v.fo_version, v.action.value) for v in versions] == [(1, "NEW")] * 4
        v1 = next(v for v in versions if v.trade_id == t1.id)
        assert (
            v1.payload["raw"] == line("T1")
            and v1.payload["line"] == 2
            and v1.payload["file"] == "fo_20261119.csv"
        )
        exc = s.scalars(select(TradeException)).all()
        assert [(e.trade_id, e.code, e.field) for e in exc] == [
            (trades["T3"].id, "ACCOUNT_UNKNOWN", "account_code")
        ]
        batch = s.scalars(select(ImportBatch)).one()
        assert (
            batch.kind == "trades" and batch.file_name == "fo_20261119.csv" and len(batch.content_hash) == 64
        )
        assert batch.summary["accepted"] == 3 and batch.summary["rejected_lines"][0]["line"] == 6
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "trades.import")).one()
        assert entry.username == "clerk1" and entry.entity_id == str(batch.id)
        assert entry.after["sha256"] == batch.content_hash and entry.after["repair"] == 1
        feed = s.scalars(select(ChangeFeedEntry).where(ChangeFeedEntry.entity_type == "trades")).all()
        assert [f.action for f in feed] == [ChangeAction.BULK] and feed[0].summary["batch"] == batch.id


def test_same_file_again_changes_nothing(db: Database, users, tmp_path: Path) -> None:
    build_reference(db)
    path = write_csv(tmp_path / "a.csv", line("T1"), line("T2"), "", line("T3", qty="x"))
    first = import_trades(db, users["clerk1"], path, today=TODAY)
    before = counts(db)
    second = import_trades(db, users["clerk2"], path, today=TODAY)
    assert second.duplicate_file and second.batch_id is None
    assert (second.lines, second.duplicates, second.skipped, second.accepted, second.rejected) == (
        4,
        3,
        1,
        0,
        0,
    )
    assert counts(db) == before and first.batch_id is not None
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(ImportBatch)) == 1
        assert (
            s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "trades.import"))
            == 1
        )


def test_known_trades_are_duplicates_or_amendments_and_cancels(db: Database, users, tmp_path: Path) -> None:
    build_reference(db)
    import_trades(
        db,
        users["clerk1"],
        write_csv(tmp_path / "a.csv", line("T1"), line("T2"), line("T3"), line("T5", account="NOPE")),
        today=TODAY,
    )
    t2_before = trade_by_ref(db, "T2")
    report = import_trades(
        db,
        users["clerk1"],
        write_csv(
            tmp_path / "b.csv",
            line("T1"),  # the same again: duplicate
            line("T2", qty="150"),  # different: amendment
            "T3,CANCEL,,,,,,,,,,",  # cancel: only the reference is needed
            line("T4"),  # new
            line("T5"),  # amendment fixing the account: the trade leaves repair
        ),
        today=TODAY,
    )
    assert report.counts() == {
        "lines": 5,
        "accepted": 4,
        "repair": 0,
        "rejected": 0,
        "duplicates": 1,
        "skipped": 0,
        "trades_created": 1,
        "trades_amended": 2,
        "trades_cancelled": 1,
    }
    assert next(i for i in report.issues if i.status == "duplicate").line == 2
    t2 = trade_by_ref(db, "T2")
    assert (t2.quantity, t2.fo_version, t2.version, t2.source_ref) == (
        Decimal("150"),
        2,
        t2_before.version + 1,
        "b.csv:3",
    )
    assert t2.gross_amount == Decimal("28387.5000")
    assert trade_by_ref(db, "T3").status == TradeStatus.CANCELLED
    t5 = trade_by_ref(db, "T5")
    assert t5.status == TradeStatus.VALIDATED and t5.exception_codes == ""
    with db.read() as s:
        actions = {
            ref: [
                (v.fo_version, v.action.value, v.source_ref)
                for v in s.scalars(
                    select(TradeVersion)
                    .join(Trade)
                    .where(Trade.trade_ref == ref)
                    .order_by(TradeVersion.fo_version)
                )
            ]
            for ref in ("T1", "T2", "T3")
        }
        old = s.scalars(select(TradeException).where(TradeException.trade_id == t5.id)).one()
    assert actions == {
        "T1": [(1, "NEW", "a.csv:2")],
        "T2": [(1, "NEW", "a.csv:3"), (2, "AMEND", "b.csv:3")],
        "T3": [(1, "NEW", "a.csv:4"), (2, "CANCEL", "b.csv:4")],
    }
    assert old.code == "ACCOUNT_UNKNOWN" and old.cleared_at is not None  # kept, cleared, not deleted


def test_new_amend_and_cancel_of_one_trade_in_one_file(ref_db: Database, tmp_path: Path) -> None:
    report = import_trades(
        ref_db,
        CLERK,
        write_csv(
            tmp_path / "t.csv",
            line("T1"),
            line("T1", action="AMEND", qty="300"),
            line("T1"),
            "T1,CANCEL,,,,,,,,,,",
            "T1,CANCEL,,,,,,,,,,",
        ),
        today=TODAY,
    )
    assert (report.accepted, report.duplicates, report.trades_created, report.trades_cancelled) == (
        4,
        1,
        1,
        1,
    )
    t1 = trade_by_ref(ref_db, "T1")
    # The third line (back to 100) is an amendment of the 300 before it, then the cancel.
    assert (t1.status, t1.quantity, t1.fo_version) == (TradeStatus.CANCELLED, Decimal("100"), 4)


# --- profiles --------------------------------------------------------------------------------------------------------


def test_german_oms_profile(ref_db: Database, tmp_path: Path) -> None:
    text = (
        "Geschäftsnummer;Auftragsnummer;ISIN;Depot;Kontrahent;K/V;Stück/Nominal;Kurs;Währung;Handelstag;Handelszeit\r\n"
        f"DE-1;A-1;{SAP};ACC1;CP1;1;1.500;120,25;EUR;19.11.2026;14:30:00\r\n"
        f"DE-2;A-2;{SAP};ACC1;CP1;V;10;119,9;EUR;19.11.2026;09:05:00\r\n"
    )
    path = tmp_path / "export.csv"
    path.write_bytes(text.encode("cp1252"))
    report = import_trades(ref_db, CLERK, path, profile="de_oms", today=TODAY)
    assert (report.accepted, report.profile) == (2, "de_oms")
    t = trade_by_ref(ref_db, "DE-1")
    assert (t.side.value, t.quantity, t.price, t.source) == (
        "BUY",
        Decimal("1500"),
        Decimal("120.25"),
        "CSV:de_oms",
    )
    assert t.trade_time == dt.datetime(2026, 11, 19, 13, 30, tzinfo=dt.UTC)  # 14:30 in Berlin (CET)
    assert t.gross_amount == Decimal("180375.0000")
    assert trade_by_ref(ref_db, "DE-2").side.value == "SELL"


def test_us_blotter_profile_with_quoted_thousands(ref_db: Database, tmp_path: Path) -> None:
    text = (
        "Trade ID,Order ID,Status,ISIN,Acct,Exec Broker,Broker BIC,B/S,Shares,Price,Ccy,Trade Date,Exec Time\n"
        f'US-1,O-1,NEW,{AAPL},ACC1,CP1,BROKUS33,B,"1,000",189.30,USD,11/19/2026,09:45:10\n'
        f'US-2,O-2,,{AAPL},ACC1,CP1,BROKUS33,SS,"2,500","189.1",USD,11/19/2026,15:59:59\n'
    )
    path = write_csv(tmp_path / "blotter.csv", text.strip(), header=text.splitlines()[0])
    path.write_text(text, encoding="utf-8")
    report = import_trades(ref_db, CLERK, path, profile="us_blotter", today=TODAY)
    assert report.accepted == 2, report.issues
    t1, t2 = trade_by_ref(ref_db, "US-1"), trade_by_ref(ref_db, "US-2")
    assert (t1.quantity, t1.side.value, t1.order_ref) == (Decimal("1000"), "BUY", "O-1")
    assert t1.trade_time == dt.datetime(
        2026, 11, 19, 14, 45, 10, tzinfo=dt.UTC
    )  # New York is UTC-5 in November
    assert (t2.quantity, t2.side.value) == (Decimal("2500"), "SELL")  # SS: sell short


def test_unknown_profile_lists_the_known_ones(ref_db: Database, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as err:
        import_trades(ref_db, CLERK, write_csv(tmp_path / "t.csv", line("T1")), profile="bloomberg")
    assert "no import profile named 'bloomberg'" in str(err.value)
    assert all(name in str(err.value) for name in known_profiles())


def test_profile_from_a_json_file(ref_db: Database, tmp_path: Path) -> None:
    profile = {
        "name": "pipes",
        "columns": {
            "trade_ref": "Ref",
            "isin": "Isin",
            "account": "Acct",
            "counterparty": "Cpty",
            "side": "Side",
            "quantity": "Qty",
            "price": "Px",
            "trade_date": "Date",
        },
        "delimiter": "|",
        "date_format": "%Y%m%d",
        "side_codes": {"B": "BUY", "S": "SELL"},
    }
    (tmp_path / "pipes.json").write_text(json.dumps(profile), encoding="utf-8")
    path = write_csv(
        tmp_path / "t.txt",
        f"P1|{AAPL}|ACC1|CP1|B|100|189.25|20261119",
        header="Ref|Isin|Acct|Cpty|Side|Qty|Px|Date",
    )
    report = import_trades(ref_db, CLERK, path, fmt="csv", profile=str(tmp_path / "pipes.json"), today=TODAY)
    assert (
        report.accepted == 1 and trade_by_ref(ref_db, "P1").currency == "USD"
    )  # blank currency: the instrument's


# --- malformed files are refused whole -------------------------------------------------------------------------------


def _xlsx_bytes(rows: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    for r in rows:
        ws.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


MALFORMED = [
    (
        "wrong_encoding",
        "t.csv",
        (HEADER + "\n" + line("T1") + "\n" + line("Té2") + "\n").encode("latin-1"),
        "is not valid utf-8-sig text (byte 0xe9 on line 3",
    ),
    ("binary", "t.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "it is binary"),
    ("zip_as_csv", "t.csv", _xlsx_bytes([["x"]]), "it is a binary file (a spreadsheet or archive)"),
    (
        "truncated_xlsx",
        "t.xlsx",
        _xlsx_bytes([HEADER.split(","), line("T1").split(",")])[:900],
        "the workbook is truncated or damaged",
    ),
    ("not_xlsx", "t.xlsx", b"trade_ref\nT1\n", "it is not an XLSX workbook"),
    (
        "wrong_columns",
        "t.csv",
        b"ref,security,qty\nT1,US0378331005,100\n",
        "the columns trade_ref, isin, account, side, quantity, price, trade_date",
    ),
    ("empty", "t.csv", b"", "the file is empty"),
    ("only_header", "t.csv", (HEADER + "\n\n").encode(), "it has a header but no trade lines"),
    (
        "truncated_csv",
        "t.csv",
        (HEADER + "\n" + line("T1") + "\n" + "T2,,,US03783").encode(),
        "it looks truncated: its last line (3) has 4 of 12 fields and no line end",
    ),
    (
        "unclosed_quote",
        "t.csv",
        (HEADER + "\n" + line("T1") + '\n"T2,,').encode(),
        "it looks truncated or damaged",
    ),
]


@pytest.mark.parametrize(("case", "name", "data", "words"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file_is_refused_and_changes_nothing(
    ref_db: Database, tmp_path: Path, case: str, name: str, data: bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    before = counts(ref_db)
    with pytest.raises(ValidationFailed) as err:
        import_trades(ref_db, CLERK, path, today=TODAY)
    assert str(err.value).startswith(f"{name} was not imported: ") and "Nothing was changed" in str(err.value)
    assert words in str(err.value), str(err.value)
    assert counts(ref_db) == before
    with ref_db.read() as s:
        assert s.scalar(select(func.count()).select_from(ImportBatch)) == 0


def test_missing_file(ref_db: Database, tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="there is no such file"):
        import_trades(ref_db, CLERK, tmp_path / "nope.csv")


# --- XLSX ------------------------------------------------------------------------------------------------------------


def test_xlsx_with_typed_cells(ref_db: Database, tmp_path: Path) -> None:
    header = HEADER.split(",")
    rows = [
        header,
        [
            "X1",
            None,
            "O-1",
            AAPL,
            "ACC1",
            "CP1",
            "BUY",
            100,
            189.25,
            "USD",
            dt.date(2026, 11, 19),
            dt.time(14, 30),
        ],
        [None] * len(header),  # an empty row Excel kept formatted
        [
            "X2",
            None,
            None,
            AAPL,
            "ACC1",
            "CP1",
            "SELL",
            2500.5,
            "190.1",
            "USD",
            dt.datetime(2026, 11, 19),
            None,
        ],
        ["X3", None, None, AAPL, "ACC1", "CP1", "SELL", "many", 190, "USD", dt.date(2026, 11, 19), None],
    ]
    path = tmp_path / "trades.xlsx"
    path.write_bytes(_xlsx_bytes(rows))
    report = import_trades(ref_db, CLERK, path, today=TODAY)
    assert (report.format, report.accepted, report.rejected) == ("xlsx", 2, 1)
    assert next(i for i in report.issues if i.status == "rejected").line == 5  # the worksheet's row number
    x1, x2 = trade_by_ref(ref_db, "X1"), trade_by_ref(ref_db, "X2")
    assert (x1.price, x1.trade_time.hour, x1.source) == (Decimal("189.25"), 14, "XLSX:default")
    assert (x2.quantity, x2.price) == (Decimal("2500.5"), Decimal("190.1"))


# --- the per-line report ---------------------------------------------------------------------------------------------


def test_per_line_report(ref_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        (
            "\ufeff"
            + HEADER
            + "\r\n"
            + line("T1")
            + "\r\n\r\n"
            + line("T2", isin="US0378331006")
            + "\r\n"
            + line("T3", side="Z")
            + "\r\n"
            + line("T1")
            + "\r\n"
        ).encode()
    )
    report = import_trades(ref_db, CLERK, path, today=TODAY)
    out = tmp_path / "report.csv"
    report.write_report(out)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["line"], r["status"], r["trade_ref"], r["field"], r["code"]) for r in rows] == [
        ("2", "accepted", "T1", "", ""),
        ("3", "skipped", "", "", "SKIPPED"),
        ("4", "repair", "T2", "isin", "ISIN_CHECK"),
        ("5", "rejected", "", "side", "BAD_SIDE"),
        ("6", "duplicate", "T1", "", "DUPLICATE"),
    ]
    assert all(r["file"] == "t.csv" for r in rows)
    assert "check digit" in rows[2]["reason"] and "side 'Z' is not one of" in rows[3]["reason"]
    summary = report.as_dict()
    assert {k: summary[k] for k in ("accepted", "repair", "rejected", "duplicates", "skipped")} == {
        "accepted": 1,
        "repair": 1,
        "rejected": 1,
        "duplicates": 1,
        "skipped": 1,
    }


def test_quoted_fields_keep_physical_line_numbers(ref_db: Database, tmp_path: Path) -> None:
    header = HEADER + ",comment"
    path = write_csv(
        tmp_path / "t.csv",
        line("T1") + ',"two\nlines"',
        line("T2", qty="bad") + ',"a, b"',
        header=header,
    )
    report = import_trades(ref_db, CLERK, path, today=TODAY)
    assert report.accepted == 1 and report.ignored_columns == ["comment"]
    assert [(i.line, i.code) for i in report.issues] == [(4, "BAD_NUMBER")]


# --- permissions and cancel ------------------------------------------------------------------------------------------


def test_import_needs_the_import_permission(ref_db: Database, tmp_path: Path) -> None:
    auditor = Actor(user_id=None, username="aud", role=Role.AUDITOR)
    with pytest.raises(PermissionDenied):
        import_trades(ref_db, auditor, write_csv(tmp_path / "t.csv", line("T1")))


def test_cancel_rolls_everything_back(ref_db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", *(line(f"T{i}") for i in range(50)))
    steps: list[str] = []

    def cancel() -> bool:
        return any(s.startswith("Writing versions") for s in steps)

    with pytest.raises(ImportCancelled, match="cancelled; nothing was changed"):
        import_trades(
            ref_db, CLERK, path, today=TODAY, progress=lambda d, t, s: steps.append(s), cancel=cancel
        )
    assert counts(ref_db) == {"trades": 0, "trade_versions": 0, "trade_exceptions": 0}
    report = import_trades(
        ref_db, CLERK, path, today=TODAY
    )  # not recorded as imported: it can be imported again
    assert report.accepted == 50


# --- a large import into a small table rebuilds the indexes instead of maintaining them --------------------------


def _index_definitions(db: Database) -> list[tuple[str, str]]:
    """Every index of the capture tables, and on PostgreSQL every foreign key, as the database describes them."""
    tables = "('trades', 'trade_versions', 'trade_exceptions')"
    with db.read() as s:
        if db.is_postgres:
            q = f"SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN {tables} ORDER BY indexname"
            fk = (
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'f' "
                f"AND conrelid::regclass::text IN {tables} ORDER BY conname"
            )
            extra = [(str(a), str(b)) for a, b in s.connection().exec_driver_sql(fk).all()]
        else:
            q = f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN {tables} ORDER BY name"
            extra = []
        return [(str(a), str(b)) for a, b in s.connection().exec_driver_sql(q).all()] + extra


def test_deferred_indexes_come_back_identical(db: Database, tmp_path: Path, monkeypatch) -> None:
    from app.services.capture import bulk

    build_reference(db)
    before = _index_definitions(db)
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 2)
    steps: list[str] = []
    path = write_csv(tmp_path / "t.csv", *(line(f"T{i}") for i in range(5)))
    # Cancelled after the rebuild: the drop is rolled back with everything else.
    with pytest.raises(ImportCancelled):
        import_trades(
            db,
            CLERK,
            path,
            today=TODAY,
            progress=lambda d, t, s: steps.append(s),
            cancel=lambda: any(s.startswith("Writing versions") for s in steps),
        )
    assert any(s.startswith("Rebuilding") for s in steps) and _index_definitions(db) == before
    report = import_trades(db, CLERK, path, today=TODAY)
    assert report.accepted == 5 and _index_definitions(db) == before
    # A later, smaller import into the now larger table keeps its indexes in place.
    steps.clear()
    import_trades(
        db,
        CLERK,
        write_csv(tmp_path / "u.csv", line("U1"), line("U2")),
        today=TODAY,
        progress=lambda d, t, s: steps.append(s),
    )
    assert not any(s.startswith("Rebuilding") for s in steps)


def test_postgres_keeps_the_indexes_when_a_colleague_is_reading(
    pg_db: Database, tmp_path: Path, monkeypatch
) -> None:
    from app.services.capture import bulk

    build_reference(pg_db)
    monkeypatch.setattr(bulk, "DEFER_INDEXES_MIN_ROWS", 2)
    monkeypatch.setattr(bulk, "PG_LOCK_WAIT", "200ms")
    steps: list[str] = []
    # Another workstation has the blotter open in a transaction: dropping an index would have to wait for it.
    with pg_db.engine.connect() as other:
        other.exec_driver_sql("BEGIN")
        other.exec_driver_sql("SELECT count(*) FROM trades").scalar()
        report = import_trades(
            pg_db,
            CLERK,
            write_csv(tmp_path / "t.csv", *(line(f"T{i}") for i in range(5))),
            today=TODAY,
            progress=lambda d, t, s: steps.append(s),
        )
        other.exec_driver_sql("ROLLBACK")
    assert report.accepted == 5 and not any(s.startswith("Rebuilding") for s in steps)


def test_cleared_exceptions_read_back_as_utc_timestamps(db: Database, tmp_path: Path) -> None:
    build_reference(db)
    import_trades(db, CLERK, write_csv(tmp_path / "a.csv", line("T1", account="NOPE")), today=TODAY)
    import_trades(db, CLERK, write_csv(tmp_path / "b.csv", line("T1")), today=TODAY)
    with db.read() as s:
        exc = s.scalars(select(TradeException)).one()
        trade = s.scalars(select(Trade)).one()
    assert exc.cleared_at is not None and exc.cleared_at.tzinfo is not None
    assert abs((exc.cleared_at - trade.updated_at).total_seconds()) < 1 and exc.cleared_at >= exc.raised_at


def test_the_cycle_collector_is_paused_during_an_import_only(ref_db: Database, tmp_path: Path) -> None:
    """The import pauses Python's cycle collector (bulk.cycle_collector_paused) and gives it back as it was:
    after a good file, after a refused one, and not switched on when it was off before."""
    import gc

    seen: list[bool] = []
    path = write_csv(tmp_path / "t.csv", line("T1"), line("T2"))
    assert gc.isenabled()
    report = import_trades(
        ref_db, CLERK, path, today=TODAY, progress=lambda d, t, s: seen.append(gc.isenabled())
    )
    assert report.accepted == 2 and seen and not any(seen) and gc.isenabled()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01binary\xff")
    with pytest.raises(ValidationFailed):
        import_trades(ref_db, CLERK, bad, today=TODAY)
    assert gc.isenabled()
    gc.disable()
    try:
        import_trades(ref_db, CLERK, write_csv(tmp_path / "u.csv", line("U1")), today=TODAY)
        assert not gc.isenabled()
    finally:
        gc.enable()
