"""Recon runs on both backends: the default definitions find exactly the demo book's injected differences (the
generator's answer) and nothing else; the break lifecycle across runs (never twice, closes itself when matched,
reopens when the difference comes back, people's manual matches respected); duplicate keys in the database;
definitions edited by supervisors only, versioned and validated."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.models import AuditEntry, Break, ReconDefinition, ReconMatch, ReconRun, StatementLine, utcnow
from app.models.enums import BreakStatus, RunStatus
from app.services import audit, demo
from app.services.db import Database
from app.services.errors import PermissionDenied, StaleEdit
from app.services.permissions import SYSTEM, Actor
from app.services.recon import definitions as defs
from app.services.recon.config import ConfigError
from app.services.recon.run import age_business_days, run_pairs, run_recon, seed_demo

from .conftest import PASSWORD

N = 1_000
SEED = 20261130
TODAY = dt.date(2026, 11, 30)
CODES = {"quantity": "DQUA", "price": "DDEA", "settlement_date": "DDAT", "isin": "DSEC", "amount": "DMON"}


@pytest.fixture
def book(db: Database, users: dict[str, Actor]) -> demo.DemoSummary:
    return demo.build_demo(db, SYSTEM, trades=N, seed=SEED, today=TODAY, password=PASSWORD)


def _expected(differences: Any) -> Counter[tuple[Any, ...]]:
    """The generator's answer as (definition, break type, identity, field, book, external, root cause)."""
    out: Counter[tuple[Any, ...]] = Counter()
    for d in differences.to_dict("records"):
        src, kind = d["source"], d["difference"]
        if src == "TRADE_CONFIRMATIONS":
            name = defs.TRADE_CONFIRMATIONS
            if kind == "MISSING":
                out[(name, "MISSING_EXTERNAL", d["trade_ref"], None, None, None, "CMIS")] += 1
            elif kind == "EXTRA":
                out[(name, "MISSING_INTERNAL", d["external"], None, None, None, None)] += 1
            else:  # QUANTITY, PRICE, SETTLEMENT_DATE, BOOK_ERROR (wrong ISIN or price booked)
                out[
                    (
                        name,
                        "FIELD_MISMATCH",
                        d["trade_ref"],
                        d["field"],
                        d["book"],
                        d["external"],
                        CODES[d["field"]],
                    )
                ] += 1
        elif src == "HOLDINGS":
            name, ident = defs.HOLDINGS, f"{d['account']}|{d['isin']}"
            kind_map = {
                "QUANTITY": "FIELD_MISMATCH",
                "MISSING": "MISSING_EXTERNAL",
                "EXTRA": "MISSING_INTERNAL",
            }
            field = "quantity" if kind == "QUANTITY" else None
            vals = (d["book"], d["external"]) if field else (None, None)
            out[(name, kind_map[kind], ident, field, *vals, "DQUA" if field else None)] += 1
        else:
            name = defs.CASH
            kind_map = {
                "AMOUNT": "FIELD_MISMATCH",
                "MISSING": "MISSING_EXTERNAL",
                "EXTRA": "MISSING_INTERNAL",
            }
            out[
                (
                    name,
                    kind_map[kind],
                    d["currency"],
                    "amount",
                    d["book"],
                    d["external"],
                    "DMON" if kind == "AMOUNT" else None,
                )
            ] += 1
    return out


def _found(db: Database) -> Counter[tuple[Any, ...]]:
    out: Counter[tuple[Any, ...]] = Counter()
    with db.read() as s:
        names = dict(s.execute(select(ReconDefinition.id, ReconDefinition.name)).all())
        for b in s.scalars(select(Break)):
            name, kind = names[b.definition_id], b.break_type.value
            if name == defs.CASH:
                rec = b.internal_record or b.external_record
                first = b.differences[0] if b.differences else None
                book = first["internal"] if first else (b.internal_record or {}).get("amount")
                ext = first["external"] if first else (b.external_record or {}).get("amount")
                out[(name, kind, rec["currency"], "amount", book, ext, b.root_cause)] += 1
            elif kind == "FIELD_MISMATCH":
                first = b.differences[0]
                out[
                    (
                        name,
                        kind,
                        b.internal_ref,
                        first["field"],
                        first["internal"],
                        first["external"],
                        b.root_cause,
                    )
                ] += 1
            else:
                ident = b.internal_ref if kind == "MISSING_EXTERNAL" else b.external_ref
                out[(name, kind, ident, None, None, None, b.root_cause)] += 1
    return out


def test_default_definitions_find_exactly_the_injected_differences(
    db: Database, book: demo.DemoSummary, users: dict[str, Actor]
) -> None:
    results = seed_demo(db, users["clerk1"])
    expected = _expected(book.differences)
    assert {k[1] for k in expected} >= {"FIELD_MISMATCH", "MISSING_EXTERNAL", "MISSING_INTERNAL"}
    assert _found(db) == expected  # every difference found, classified, and no false break
    total = sum(r.new_breaks for r in results.values())
    assert total == len(book.differences)
    trades = results[defs.TRADE_CONFIRMATIONS]
    assert trades.matched_by_pass["exact_ref"] > 0 and trades.matched_by_pass["composite"] > 0
    # Nothing was confirmed by a custodian's settlement confirmation in the demo: no coverage, no break flood.
    settle = results[defs.SETTLEMENT]
    assert settle.new_breaks == 0 and settle.out_of_coverage > 0
    with db.read() as s:
        assert (
            s.scalar(select(func.count()).select_from(ReconRun).where(ReconRun.status == RunStatus.COMPLETED))
            == 4
        )
        # Routine 1:1 pairs are kept compactly, one row per run and pass; matches people act on (aggregations)
        # are recon_matches rows. Together they account for every match, and no record is in two pairs.
        groups = s.scalar(select(func.count()).select_from(ReconMatch))
    all_pairs = [run_pairs(db, users["auditor"], r.run_id) for r in results.values()]
    n_pairs = sum(len(p) for per in all_pairs for p in per.values())
    assert n_pairs > 0 and n_pairs + groups == sum(r.matched for r in results.values())
    for per, r in zip(all_pairs, results.values(), strict=True):
        for name, pairs in per.items():
            assert len(pairs) == r.matched_by_pass[name]
            assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
    with db.read() as s:
        # Amounts at stake are money, and each break says its currency.
        assert s.scalar(select(func.count()).select_from(Break).where(Break.currency.is_(None))) == 0
        assert s.scalar(select(func.count()).select_from(Break).where(Break.amount <= 0)) == 0


def _break(db: Database, **where: Any) -> Break:
    with db.read() as s:
        return s.scalars(select(Break).filter_by(**where)).one()


def _history(db: Database, break_id: int) -> list[dict[str, Any]]:
    with db.read() as s:
        return [e.after or {} for e in audit.history(s, "breaks", break_id)]


def test_break_lifecycle_across_runs(db: Database, book: demo.DemoSummary, users: dict[str, Actor]) -> None:
    clerk = users["clerk1"]
    first = run_recon(db, clerk, defs.CASH)
    assert first.new_breaks == 3
    # The same differences found again: no new break, nothing reopened or closed, versions untouched.
    with db.read() as s:
        before = {b.id: (b.version, b.status) for b in s.scalars(select(Break))}
    again = run_recon(db, clerk, defs.CASH)
    assert (again.new_breaks, again.still_open, again.reopened, again.resolved) == (0, 3, 0, 0)
    with db.read() as s:
        assert {b.id: (b.version, b.status) for b in s.scalars(select(Break))} == before
        assert s.scalar(select(Break.last_run_id).where(Break.id == next(iter(before)))) == again.run_id

    # The bank corrects its line: the amount break closes itself with a history line.
    mismatch = _break(db, break_type="FIELD_MISMATCH")
    good, bad = mismatch.differences[0]["internal"], mismatch.differences[0]["external"]
    with db.write() as s:
        s.execute(
            text("UPDATE statement_lines SET amount = :a WHERE reference = :r"),
            {"a": good, "r": mismatch.external_ref},
        )
    fixed = run_recon(db, clerk, defs.CASH)
    assert (fixed.new_breaks, fixed.resolved, fixed.reopened) == (0, 1, 0)
    closed = _break(db, id=mismatch.id)
    assert closed.status == BreakStatus.RESOLVED and closed.resolved_at is not None
    assert closed.version == mismatch.version + 1
    assert any(h.get("note") == f"matched by run {fixed.run_id}" for h in _history(db, mismatch.id))
    # The pair that closed it is a match people can see (and unmatch) from the break, not just in the run's pairs.
    with db.read() as s:
        shown = s.execute(
            select(ReconMatch.left_refs, ReconMatch.right_refs).where(ReconMatch.run_id == fixed.run_id)
        ).all()
    assert ([mismatch.internal_ref], [mismatch.external_ref]) in [(lr, rr) for lr, rr in shown]

    # The difference comes back: the same break reopens (never a second one).
    with db.write() as s:
        s.execute(
            text("UPDATE statement_lines SET amount = :a WHERE reference = :r"),
            {"a": bad, "r": mismatch.external_ref},
        )
    back = run_recon(db, clerk, defs.CASH)
    assert (back.new_breaks, back.reopened, back.resolved) == (0, 1, 0)
    reopened = _break(db, id=mismatch.id)
    assert reopened.status == BreakStatus.OPEN and reopened.resolved_at is None
    assert any(
        h.get("note", "").startswith(f"reopened by run {back.run_id}") for h in _history(db, mismatch.id)
    )
    with db.read() as s:
        fps = s.execute(select(Break.fingerprint)).scalars().all()
        assert len(fps) == len(set(fps)) == 3


def test_a_manual_match_is_respected_and_an_assigned_break_keeps_its_owner(
    db: Database, book: demo.DemoSummary, users: dict[str, Actor]
) -> None:
    clerk, sup = users["clerk1"], users["supervisor"]
    run_recon(db, clerk, defs.HOLDINGS)
    with db.read() as s:
        ext = s.scalars(
            select(Break).where(Break.break_type == "MISSING_EXTERNAL").order_by(Break.id)
        ).first()
        intl = s.scalars(
            select(Break).where(Break.break_type == "MISSING_INTERNAL").order_by(Break.id)
        ).first()
        mism = s.scalars(select(Break).where(Break.break_type == "FIELD_MISMATCH").order_by(Break.id)).first()
        def_id = ext.definition_id
    assert ext and intl and mism
    # A person pairs the position nobody reported with the line nobody holds (as the workflow does on approval),
    # and a clerk owns the quantity break.
    with db.write() as s:
        s.add(
            ReconMatch(
                definition_id=def_id,
                pass_name="manual",
                left_refs=[ext.internal_ref],
                right_refs=[intl.external_ref],
                matched_by_id=sup.user_id,
                matched_at=utcnow(),
            )
        )
        s.execute(
            text("UPDATE breaks SET status = 'ASSIGNED', owner_id = :u WHERE id = :i"),
            {"u": clerk.user_id, "i": mism.id},
        )
    after = run_recon(db, clerk, defs.HOLDINGS)
    assert after.manual == 2 and after.new_breaks == 0 and after.resolved == 2
    for b in (ext, intl):
        closed = _break(db, id=b.id)
        assert closed.status == BreakStatus.RESOLVED
        assert any(h.get("note") == f"matched by run {after.run_id}" for h in _history(db, b.id))
    kept = _break(db, id=mism.id)
    assert kept.status == BreakStatus.ASSIGNED and kept.owner_id == clerk.user_id
    third = run_recon(db, clerk, defs.HOLDINGS)
    assert (third.new_breaks, third.reopened, third.resolved) == (0, 0, 0)
    with db.read() as s:
        manual = s.scalars(select(ReconMatch).where(ReconMatch.pass_name == "manual")).one()
        assert manual.unmatched_at is None


def test_records_a_person_unmatched_are_never_paired_again_by_a_run(
    db: Database, book: demo.DemoSummary, users: dict[str, Actor]
) -> None:
    from app.models.enums import CorrectionKind
    from app.services.workflow import corrections as wf

    clerk, sup = users["clerk1"], users["supervisor"]
    first = run_recon(db, clerk, defs.HOLDINGS)
    left, right = next(iter(run_pairs(db, clerk, first.run_id).values()))[0]
    with db.write() as s:  # the engine's pair, as a break it closed would have recorded it
        def_id = s.scalar(select(ReconDefinition.id).where(ReconDefinition.name == defs.HOLDINGS))
        m = ReconMatch(definition_id=def_id, pass_name="exact_ref", left_refs=[left], right_refs=[right])
        s.add(m)
        s.flush()
        match_id = m.id
    cid = wf.propose(
        db,
        clerk,
        CorrectionKind.UNMATCH,
        "recon_matches",
        match_id,
        {},
        "not the same holding",
        seen_version=None,
    )
    wf.approve(db, sup, cid)
    opened = {(b.internal_ref, b.external_ref): b.id for b in _breaks_of(db, def_id) if b.status == "OPEN"}
    assert (left, None) in opened and (None, right) in opened

    again = run_recon(db, clerk, defs.HOLDINGS)
    assert sum(again.matched_by_pass.values()) == sum(first.matched_by_pass.values()) - 1
    assert again.new_breaks == 0 and again.resolved == 0  # nothing re-paired, nothing closed, nothing doubled
    for key in ((left, None), (None, right)):
        assert _break(db, id=opened[key]).status == BreakStatus.OPEN
    paired = [p for pairs in run_pairs(db, clerk, again.run_id).values() for p in pairs]
    assert paired and not any(lft == left or rgt == right for lft, rgt in paired)


def _breaks_of(db: Database, def_id: int) -> list[Break]:
    with db.read() as s:
        return list(s.scalars(select(Break).where(Break.definition_id == def_id)))


def test_a_duplicated_statement_line_is_a_duplicate_key_break_never_paired(
    db: Database, book: demo.DemoSummary, users: dict[str, Actor]
) -> None:
    with db.write() as s:
        line = s.scalars(
            select(StatementLine).where(StatementLine.reference.like("POS-%")).order_by(StatementLine.id)
        ).first()
        s.add(
            StatementLine(
                statement_id=line.statement_id,
                line_no=line.line_no + 10_000,
                reference=line.reference,
                value_date=line.value_date,
                isin=line.isin,
                quantity=line.quantity,
                currency=line.currency,
                account_identifier=line.account_identifier,
                extra={},
            )
        )
    result = run_recon(db, users["clerk1"], defs.HOLDINGS)
    assert result.breaks["DUPLICATE_KEY"] == 1
    dup = _break(db, break_type="DUPLICATE_KEY")
    assert dup.internal_record["key"]["isin"] == line.isin
    assert len(dup.external_record["records"]) == 2 and len(dup.internal_record["records"]) == 1
    with db.read() as s:
        refs = [r for (r,) in s.execute(select(ReconMatch.left_refs))]
    assert [dup.internal_ref] not in refs  # the position was not paired with either line
    paired = {a for pairs in run_pairs(db, users["auditor"], result.run_id).values() for a, _ in pairs}
    assert paired and dup.internal_ref not in paired


def test_definitions_are_created_once_and_edited_by_supervisors_only(
    db: Database, users: dict[str, Actor]
) -> None:
    assert sorted(defs.ensure_default_definitions(db, users["clerk1"])) == sorted(defs.DEFAULTS)
    assert defs.ensure_default_definitions(db, users["clerk1"]) == []
    cash = defs.get_definition(db, users["auditor"], defs.CASH)
    new = dict(cash.config)
    new["fields"] = dict(new["fields"]) | {"amount": {"type": "money", "tolerance": "abs=25", "code": "DMON"}}
    with pytest.raises(PermissionDenied):
        defs.update_definition(db, users["clerk1"], cash.id, new, seen_version=cash.version)
    edited = defs.update_definition(db, users["supervisor"], cash.id, new, seen_version=cash.version)
    assert edited.version == cash.version + 1
    assert edited.config["fields"]["amount"]["tolerance"] == "abs=25"
    with pytest.raises(StaleEdit):
        defs.update_definition(db, users["supervisor2"], cash.id, cash.config, seen_version=cash.version)
    broken = dict(new) | {"fields": dict(new["fields"]) | {"amount": {"right": "amout", "type": "money"}}}
    with pytest.raises(ConfigError, match=r"fields\.amount\.right: the right source has no column 'amout'"):
        defs.update_definition(db, users["supervisor"], cash.id, broken, seen_version=edited.version)
    wrong_type = dict(new) | {"fields": dict(new["fields"]) | {"value_date": {"type": "money"}}}
    with pytest.raises(ConfigError, match=r"fields\.value_date\.type"):
        defs.update_definition(db, users["supervisor"], cash.id, wrong_type, seen_version=edited.version)
    with db.read() as s:
        entry = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "recon_definitions.edit").order_by(AuditEntry.id)
        ).one()
        assert entry.username == "supervisor" and entry.before and entry.after


def test_a_run_on_an_empty_book_and_permissions(db: Database, users: dict[str, Actor]) -> None:
    with pytest.raises(PermissionDenied):
        run_recon(db, users["auditor"], defs.CASH)
    result = run_recon(db, users["clerk1"], defs.CASH, as_of=dt.date(2026, 11, 20))
    assert result.matched == 0 and sum(result.breaks.values()) == 0 and result.as_of == dt.date(2026, 11, 20)
    with db.read() as s:
        run = s.get(ReconRun, result.run_id)
        assert (
            run.status == RunStatus.COMPLETED
            and run.stats["matched"] == 0
            and run.run_by_id == users["clerk1"].user_id
        )


def test_age_in_business_days_follows_the_market_calendar() -> None:
    opened = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)  # Wednesday before Thanksgiving
    assert age_business_days(opened, dt.date(2026, 11, 25)) == 0
    assert age_business_days(opened, dt.date(2026, 11, 30), "XNYS") == 2  # Thu is a holiday: Wed, Fri
    assert age_business_days(opened, dt.date(2026, 11, 30), "XLON") == 3
