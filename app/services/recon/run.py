"""Running a reconciliation: read both sides, run every pass, write the run, its matches and its breaks in bulk.

Break lifecycle across runs (the rules clerks rely on):

- A break is found again by its **fingerprint**: sha256 of the definition, the break type, the records' identities
  (or the duplicated key value) and the names of the differing fields. It is never created twice: a later run that
  finds the same difference updates the existing break (last run, current values) and leaves its status, owner
  and version alone, so nobody's open edit becomes stale because a run passed by.
- An OPEN, ASSIGNED or PROPOSED break that a later run no longer finds, while its records were read by that run,
  closes itself: RESOLVED, with an audit history line "matched by run N" (or "no longer found by run N" when the
  records now differ in another way, which is then a break of its own).
- A RESOLVED break that comes back reopens: OPEN, with a history line "reopened by run N". A WRITTEN_OFF break that
  is still there stays written off (the difference was accepted).
- Records in an active manual match (``recon_matches`` with ``pass_name = 'manual'``, made by a person) are taken
  out of the run before matching: a run never re-breaks them and never undoes the match.
- Records of a match a person undid (an approved UNMATCH) are left out of later runs: the engine never pairs them
  again by itself, and the breaks the unmatch opened stay with the people working them until someone matches them
  by hand.

What is stored of the matches (auditability without a million rows a run): every one-to-one pair a pass made goes
to ``recon_run_pairs``, one row per run and pass holding the two identity lists side by side (``run_pairs`` reads
them back); ``recon_matches`` gets a row for each aggregation group, for each pair that closed a break (so the
break shows what it matched and can be unmatched), and for people's manual matches.

Reads happen in a read session; the writes in one unit of work that first locks the definition row (PostgreSQL),
so two runs of one definition never interleave (SQLite write transactions are serial already). If the run fails,
nothing of it is written except a FAILED run row saying why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from json.encoder import c_make_encoder as _c_make_encoder  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _quote  # type: ignore[attr-defined]
from json.encoder import encode_basestring_ascii as _quote_ascii  # type: ignore[attr-defined]
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.models import Break, ReconDefinition, ReconMatch, ReconRun, utcnow
from app.models.enums import BreakStatus, BreakType, ChangeAction, RunStatus
from app.models.recon import ReconRunPairs

from .. import audit
from ..calendars import DESK_CALENDAR, get_calendar
from ..capture import bulk
from ..collector import cycle_collector_paused
from ..db import Database
from ..errors import OpsDeskError
from ..jsonable import canonical_json, to_jsonable
from ..permissions import Actor, Permission, require
from . import definitions as defs
from .config import ReconConfig
from .engine import MATCHED, describe_chunks, reconcile
from .sources import needed_columns, prepare, read_sources

ACTIVE = (BreakStatus.OPEN, BreakStatus.ASSIGNED, BreakStatus.PROPOSED)
MANUAL = "manual"


@dataclass
class RunResult:
    run_id: int
    definition: str
    as_of: dt.date
    left_records: int
    right_records: int
    matched: int
    matched_by_pass: dict[str, int]
    breaks: dict[str, int]  # breaks found by this run, by type
    new_breaks: int
    still_open: int
    reopened: int
    resolved: int
    manual: int  # records left out because a person matched them
    out_of_coverage: int
    duration: float
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["as_of"] = self.as_of.isoformat()
        d["duration"] = round(self.duration, 3)
        d["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        d["breaks_total"] = sum(self.breaks.values())
        return d


def fingerprint(definition_id: int, break_type: str, key: list[Any]) -> str:
    """The identity of a difference: definition, type, record identities and differing field names."""
    if type(definition_id) is int and type(break_type) is str and all(type(k) is str for k in key):
        # What canonical_json gives for plain strings (compact, unescaped non-ASCII), written directly: a run
        # fingerprints every break it finds, and a new JSON encoder per call was most of the cost.
        text_ = f"[{definition_id},{_quote(break_type)},[{','.join(map(_quote, key))}]]"
    else:
        text_ = canonical_json([definition_id, break_type, key])
    return hashlib.sha256(text_.encode()).hexdigest()


def _manual_refs(s: Session, definition_id: int) -> tuple[set[str], set[str]]:
    left: set[str] = set()
    right: set[str] = set()
    rows = s.execute(
        select(ReconMatch.left_refs, ReconMatch.right_refs).where(
            ReconMatch.definition_id == definition_id,
            ReconMatch.pass_name == MANUAL,
            ReconMatch.unmatched_at.is_(None),
        )
    )
    for lrefs, rrefs in rows:
        left.update(str(r) for r in lrefs or [])
        right.update(str(r) for r in rrefs or [])
    return left, right


def _kept_apart(s: Session, definition_id: int) -> tuple[set[str], set[str]]:
    """The records of matches a person undid (an approved UNMATCH): the engine must not pair them again by itself.
    Only a person puts them together again, with a manual match (which then takes them, see ``_manual_refs``)."""
    left: set[str] = set()
    right: set[str] = set()
    rows = s.execute(
        select(ReconMatch.left_refs, ReconMatch.right_refs).where(
            ReconMatch.definition_id == definition_id, ReconMatch.unmatched_at.is_not(None)
        )
    )
    for lrefs, rrefs in rows:
        left.update(str(r) for r in lrefs or [])
        right.update(str(r) for r in rrefs or [])
    return left, right


def run_recon(db: Database, actor: Actor, name: str, *, as_of: dt.date | None = None) -> RunResult:
    """Run the definition ``name`` (or id) over both sides as of ``as_of`` (default: everything known today)."""
    require(actor, Permission.RUN_PROCESSES)
    # A run makes tens of thousands of small dicts and lists (the break records) while the frames and Arrow tables
    # of a million records are alive, and each collection that spills into older generations walks all of it: on
    # the 1M-record bench the break records took 0.81-0.95 s with the collector on, 0.57-0.61 s off. The pause is
    # shared with imports running on other threads (collector.cycle_collector_paused).
    with cycle_collector_paused():
        return _run(db, actor, name, as_of)


def _run(db: Database, actor: Actor, name: str, as_of: dt.date | None) -> RunResult:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with db.read() as s:
        exists = s.scalar(select(ReconDefinition.id).where(ReconDefinition.name == name))
    if exists is None and name in defs.DEFAULTS:
        defs.ensure_default_definitions(db, actor)
    with db.read() as s:
        d = defs.find(s, name)
        def_id, def_name, raw = d.id, d.name, d.config
        if not d.is_active:
            raise OpsDeskError(
                f"The recon definition {def_name!r} is switched off; a supervisor can switch it on."
            )
        cfg = defs.validate(raw)
        t = time.perf_counter()
        left_raw, right_raw = read_sources(
            s,
            db,
            [
                (cfg.left.source, as_of, needed_columns(cfg, "left")),
                (cfg.right.source, as_of, needed_columns(cfg, "right")),
            ],
        )
        manual_l, manual_r = _manual_refs(s, def_id)
        apart_l, apart_r = _kept_apart(s, def_id)
        apart_l -= manual_l
        apart_r -= manual_r
        timings["read"] = time.perf_counter() - t
    run_date = as_of or dt.datetime.now(dt.UTC).date()
    try:
        t = time.perf_counter()
        left = prepare(left_raw, cfg.left, cfg, "left")
        right = prepare(right_raw, cfg.right, cfg, "right")
        del left_raw, right_raw
        # Records a person took apart are left out of the run altogether, as if not read: the engine does not pair
        # them again, and the breaks the unmatch made for them stay as people left them.
        if apart_l:
            left = left.loc[~_in(left["_id"], apart_l)].reset_index(drop=True)
        if apart_r:
            right = right.loc[~_in(right["_id"], apart_r)].reset_index(drop=True)
        # Every record read is in this run's scope (its breaks may close); records a person matched stay out of
        # the matching and count as matched.
        in_manual_l = _in(left["_id"], manual_l)
        in_manual_r = _in(right["_id"], manual_r)
        manual = int(in_manual_l.sum() + in_manual_r.sum())
        keep_l, keep_r = ~in_manual_l, ~in_manual_r
        out_of_coverage = 0
        if cfg.coverage:
            covered = np.zeros(len(left), dtype=bool)
            covered[keep_l] = _covered(left.loc[keep_l], right.loc[keep_r], cfg)
            out_of_coverage = int((keep_l & ~covered).sum())
            keep_l &= covered
        pos_l, pos_r = np.flatnonzero(keep_l), np.flatnonzero(keep_r)
        result = reconcile(
            left if len(pos_l) == len(left) else left.iloc[pos_l].reset_index(drop=True),
            right if len(pos_r) == len(right) else right.iloc[pos_r].reset_index(drop=True),
            cfg,
        )
        matched_l, matched_r = in_manual_l.copy(), in_manual_r.copy()
        matched_l[pos_l] |= result.state_left == MATCHED
        matched_r[pos_r] |= result.state_right == MATCHED
        sides = _Scope(left["_id"], right["_id"], matched_l, matched_r, pos_l, pos_r)
        timings["match"] = time.perf_counter() - t
        t = time.perf_counter()
        counts = _write(
            db,
            actor,
            def_id,
            def_name,
            cfg,
            run_date,
            result,
            sides,
            {"manual": manual, "out_of_coverage": out_of_coverage, "as_of": as_of},
        )
        timings["write"] = time.perf_counter() - t
    except Exception as err:
        _record_failure(db, actor, def_id, run_date, err)
        raise
    return RunResult(
        run_id=counts["run_id"],
        definition=def_name,
        as_of=run_date,
        left_records=result.left.n,
        right_records=result.right.n,
        matched=result.matched_groups,
        matched_by_pass=result.matched_by_pass(),
        breaks=result.breaks_by_type(),
        new_breaks=counts["new"],
        still_open=counts["still_open"],
        reopened=counts["reopened"],
        resolved=counts["resolved"],
        manual=manual,
        out_of_coverage=out_of_coverage,
        duration=time.perf_counter() - started,
        timings=timings,
    )


def _in(ids: pd.Series, refs: set[str]) -> np.ndarray:
    """Which identities are among ``refs`` (a few manual matches against a million records: one hash probe each)."""
    if not refs:
        return np.zeros(len(ids), dtype=bool)
    return ids.isin(list(refs)).to_numpy(dtype=bool)


@dataclass
class _Scope:
    """Every record a run read (identities), which of them ended up matched, and where the engine's frames sit."""

    left_ids: pd.Series
    right_ids: pd.Series
    matched_left: np.ndarray
    matched_right: np.ndarray
    pos_left: np.ndarray  # engine position -> position among the records read
    pos_right: np.ndarray

    def lookup(self, which: str, refs: set[str]) -> tuple[set[str], set[str]]:
        """(refs read by the run, refs matched by it) among ``refs``."""
        ids = self.left_ids if which == "left" else self.right_ids
        matched = self.matched_left if which == "left" else self.matched_right
        hit = _in(ids, refs)
        if not hit.any():
            return set(), set()
        vals = ids.to_numpy(dtype=object)[hit]
        return set(vals.tolist()), set(vals[matched[hit]].tolist())


def _covered(left: pd.DataFrame, right: pd.DataFrame, cfg: ReconConfig) -> np.ndarray:
    """Left records whose coverage fields' values occur on the right (the outside world reported on them)."""
    keys = list(cfg.coverage)
    reported = right[keys].drop_duplicates()
    reported["_covered"] = True
    merged = left[keys].merge(reported, on=keys, how="left")
    return merged["_covered"].fillna(False).to_numpy(dtype=bool)


def _record_failure(db: Database, actor: Actor, def_id: int, run_date: dt.date, err: Exception) -> None:
    try:
        with db.write() as s:
            run = ReconRun(
                definition_id=def_id,
                as_of_date=run_date,
                status=RunStatus.FAILED,
                finished_at=utcnow(),
                run_by_id=actor.user_id,
                stats={"error": str(err)[:1000]},
            )
            s.add(run)
            s.flush()
            audit.record(
                s,
                actor,
                "recon.run_failed",
                "recon_runs",
                run.id,
                after={"error": str(err)[:1000]},
                change=ChangeAction.INSERT,
            )
    except Exception:  # the original error is what the user needs to see
        pass


# json.dumps(value) with its default settings, minus what it costs per call (a new C encoder each time): a run
# writes three JSON documents for each of tens of thousands of breaks (0.24 s instead of 0.40 s for 54,000 of them).
# No circular-reference check (the values are trees made by describe()); a value json cannot encode raises TypeError
# as json.dumps does. The C encoder's constructor is CPython's private API: an interpreter without it, or whose
# constructor takes other arguments, gets plain json.dumps (tested against it either way).
def _c_encoder() -> Any:
    if _c_make_encoder is None:
        return None
    try:
        # markers (none), default, string encoder, indent, key and item separators, sort_keys, skipkeys, allow_nan
        encode = _c_make_encoder(
            None, json.JSONEncoder().default, _quote_ascii, None, ": ", ", ", False, False, True
        )
        return encode if "".join(encode({"a": [1, "é"]}, 0)) == json.dumps({"a": [1, "é"]}) else None
    except TypeError:
        return None


_ENCODE = _c_encoder()


def _dumps(value: Any) -> str:
    """Exactly ``json.dumps(value)``."""
    if _ENCODE is None:  # pragma: no cover - an interpreter without the C accelerator
        return json.dumps(value)
    return "".join(_ENCODE(value, 0))


def _json(value: Any) -> str | None:
    """A break's JSON column as text (SQL NULL for None); describe() hands out JSON-able values already."""
    if value is None:
        return None
    try:
        return _dumps(value)
    except TypeError:
        return json.dumps(to_jsonable(value))


_CONTROL = re.compile(r"[\x00-\x1f]")
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'  # what JSON escapes inside a string (RE2, for Arrow)


def _json_strings(ids: list[Any]) -> str:
    """A JSON array of identities. A million of them: one join, and json.dumps only if some need escaping."""
    try:
        body = '","'.join(ids)
    except TypeError:  # not all text
        return json.dumps(ids)
    if body.count('"') == 2 * max(len(ids) - 1, 0) and "\\" not in body and not _CONTROL.search(body):
        return f'["{body}"]' if ids else "[]"
    return json.dumps(ids)


def _json_ids(side: Any, pos: np.ndarray) -> str:
    """The JSON array of some records' identities (as :func:`_json_strings` gives it), made in Arrow where the
    identities are Arrow strings: a million identities joined without a Python string for each."""
    arr = side.ids_arrow(pos)
    if arr is None or arr.null_count:
        return _json_strings(side.ids_at(pos).tolist())
    if not len(arr):
        return "[]"
    if pc.any(pc.match_substring_regex(arr, _NEEDS_ESCAPE)).as_py():
        return json.dumps(arr.to_pylist())
    arr = arr.cast(pa.large_string())
    whole = pa.LargeListArray.from_arrays(pa.array([0, len(arr)], type=pa.int64()), arr)
    return '["' + pc.binary_join(whole, pa.scalar('","', pa.large_string()))[0].as_py() + '"]'


def _break_columns(
    s: Session,
    rows: list[tuple[dict[str, Any], str]],
    def_id: int,
    run_id: int,
    run_date: dt.date,
    stamp: str,
    actor: Actor,
) -> tuple[list[str], list[list[Any]]]:
    """The ``breaks`` columns of some new breaks (names, values column by column)."""
    n = len(rows)
    found = [b for b, _ in rows]
    amounts = np.array([_units4(b["amount"]) for b in found], dtype=np.int64)

    def text_(key: str, size: int) -> list[str | None]:
        return [None if b[key] is None else str(b[key])[:size] for b in found]

    columns = {
        "definition_id": [def_id] * n,
        "fingerprint": [fp for _, fp in rows],
        "first_run_id": [run_id] * n,
        "last_run_id": [run_id] * n,
        "break_type": [BreakType(b["break_type"]).value for b in found],
        "status": [BreakStatus.OPEN.value] * n,
        "category": [(b["category"] or None) and str(b["category"])[:32] for b in found],
        "root_cause": [b["root_cause"] for b in found],
        "internal_ref": text_("internal_ref", 128),
        "external_ref": text_("external_ref", 128),
        "internal_record": [_json(b["internal_record"]) for b in found],
        "external_record": [_json(b["external_record"]) for b in found],
        "differences": [_json(b["differences"]) for b in found],
        "amount": bulk.numbers(amounts, 4, s),
        "currency": [b["currency"] for b in found],
        "as_of_date": [run_date.isoformat()] * n,
        "opened_at": [stamp] * n,
        "version": [1] * n,
        "created_at": [stamp] * n,
        "updated_at": [stamp] * n,
        "updated_by_id": [actor.user_id] * n,
    }
    return list(columns), list(columns.values())


def _units4(amount: Any) -> int:
    """A break's amount (Decimal or its text) as integer units of 1e-4, the Money column's scale."""
    return int(Decimal(amount).scaleb(4).to_integral_value())


def _refresh_breaks(
    s: Session, rows: list[tuple[int, dict[str, Any]]], run_id: int, run_date: dt.date
) -> None:
    """Breaks found again: the last run and the current values, in one statement executed for all of them (JSON
    made once here, as for new breaks); status, owner and version are left alone."""
    pg = bulk.is_postgres(s)
    doc = "CAST(? AS JSONB)" if pg else "?"
    sql = (
        f"UPDATE breaks SET last_run_id = ?, differences = {doc}, amount = ?, internal_record = {doc},"
        f" external_record = {doc}, as_of_date = ? WHERE id = ?"
    )
    amounts = bulk.numbers(np.array([_units4(b["amount"]) for _, b in rows], dtype=np.int64), 4, s)
    day: Any = run_date if pg else run_date.isoformat()
    params = [
        (
            run_id,
            _json(b["differences"]),
            amount,
            _json(b["internal_record"]),
            _json(b["external_record"]),
            day,
            bid,
        )
        for (bid, b), amount in zip(rows, amounts, strict=True)
    ]
    bulk.execute_many(s, sql, params)


def _record_ids(rec: dict[str, Any] | None) -> list[str]:
    if not rec:
        return []
    if "records" in rec:
        return [str(r.get("_id")) for r in rec["records"]]
    return [str(rec["_id"])] if rec.get("_id") is not None else []


def _write(
    db: Database,
    actor: Actor,
    def_id: int,
    def_name: str,
    cfg: ReconConfig,
    run_date: dt.date,
    result: Any,
    sides: _Scope,
    extra: dict[str, Any],
) -> dict[str, int]:
    now = utcnow()
    with db.write() as s, bulk.bulk_write(s):
        if db.is_postgres:
            s.execute(text("SELECT id FROM recon_definitions WHERE id = :i FOR UPDATE"), {"i": def_id})
        run = ReconRun(
            definition_id=def_id,
            as_of_date=run_date,
            status=RunStatus.RUNNING,
            started_at=now,
            run_by_id=actor.user_id,
            stats={},
        )
        s.add(run)
        s.flush()
        run_id = run.id
        if db.is_postgres:
            _fast_toast_compression(s)
        existing = {
            r.fingerprint: r
            for r in s.execute(
                select(
                    Break.id,
                    Break.fingerprint,
                    Break.status,
                    Break.break_type,
                    Break.internal_ref,
                    Break.external_ref,
                ).where(Break.definition_id == def_id)
            )
        }
        refresh: list[tuple[int, dict[str, Any]]] = []
        reopen: list[tuple[int, dict[str, Any]]] = []
        seen: set[str] = set()
        new_count = 0
        stamp = bulk.timestamp(now, s)
        # A pipeline: this thread makes the break records a chunk at a time (Python), a writer thread stores each
        # chunk as it comes (the database works while the next chunk is made, the driver waiting without the GIL),
        # and a third thread makes the run's pair lists meanwhile (Arrow, mostly without the GIL); the writer
        # stores them between two chunks as soon as they are made rather than after the last (stored last, they
        # took 0.4 s at the end of a 1.8 s write). Only the writer uses the session until it is done: this thread
        # makes no query.
        with (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="recon-write") as writer,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="recon-pairs") as maker,
        ):
            pairs = maker.submit(_pair_columns, run_id, def_id, result)
            jobs: list[Future[Any]] = []
            pairs_queued = False
            for chunk in describe_chunks(result):
                if not pairs_queued and pairs.done():
                    jobs.append(writer.submit(_insert_pairs, s, pairs))
                    pairs_queued = True
                if any(j.done() and j.exception() is not None for j in jobs):
                    break  # the transaction failed: what follows could only fail too
                fresh: list[tuple[dict[str, Any], str]] = []
                for b in chunk:
                    fp = fingerprint(def_id, b["break_type"], b["key"])
                    # A repeat cannot happen with distinct records; this guards the unique constraint all the same.
                    if fp in seen:
                        continue
                    seen.add(fp)
                    old = existing.get(fp)
                    if old is None:
                        fresh.append((b, fp))
                    elif old.status == BreakStatus.RESOLVED:
                        reopen.append(
                            (
                                old.id,
                                {
                                    "differences": to_jsonable(b["differences"]),
                                    "amount": b["amount"],
                                    "internal_record": to_jsonable(b["internal_record"]),
                                    "external_record": to_jsonable(b["external_record"]),
                                },
                            )
                        )
                    else:
                        refresh.append((old.id, b))
                if fresh:
                    new_count += len(fresh)
                    names, values = _break_columns(s, fresh, def_id, run_id, run_date, stamp, actor)
                    # PostgreSQL: the COPY text is written here too, so the writer (the pipeline's slower end,
                    # measured) only sends it.
                    buffer = bulk.copy_text(values) if db.is_postgres else None
                    if buffer is not None:
                        jobs.append(writer.submit(bulk.copy_prepared, s, "breaks", names, buffer))
                    else:
                        jobs.append(writer.submit(bulk.insert_rows, s, "breaks", names, values))
            if not pairs_queued:
                jobs.append(writer.submit(_insert_pairs, s, pairs))
            for j in jobs:
                j.result()
        n_pairs = len(pairs.result()[0])
        # Breaks of this definition not found again: close those whose records this run read.
        gone = [r for fp, r in existing.items() if fp not in seen and r.status in ACTIVE]
        dup_ids: dict[int, tuple[list[str], list[str]]] = {}
        dup_gone = [r.id for r in gone if r.break_type == BreakType.DUPLICATE_KEY]
        if dup_gone:
            for bid, irec, erec in s.execute(
                select(Break.id, Break.internal_record, Break.external_record).where(Break.id.in_(dup_gone))
            ):
                dup_ids[bid] = (_record_ids(irec), _record_ids(erec))
        refs_of = {
            r.id: dup_ids.get(
                r.id, ([r.internal_ref] if r.internal_ref else [], [r.external_ref] if r.external_ref else [])
            )
            for r in gone
        }
        # Look up only the identities these breaks name, not every identity the run read.
        scope_l, matched_l = sides.lookup("left", {i for lids, _ in refs_of.values() for i in lids})
        scope_r, matched_r = sides.lookup("right", {i for _, rids in refs_of.values() for i in rids})
        resolve: list[tuple[int, str]] = []
        closed_l: set[str] = set()
        closed_r: set[str] = set()
        for r in gone:
            lids, rids = refs_of[r.id]
            if not (any(i in scope_l for i in lids) or any(i in scope_r for i in rids)):
                continue  # its records were not part of this run (another date, filtered out): leave it alone
            is_matched = (not lids or all(i in matched_l for i in lids)) and (
                not rids or all(i in matched_r for i in rids)
            )
            note = f"matched by run {run_id}" if is_matched else f"no longer found by run {run_id}"
            resolve.append((r.id, note))
            if is_matched:
                closed_l.update(lids)
                closed_r.update(rids)

        table = Break.__table__
        if refresh:
            _refresh_breaks(s, refresh, run_id, run_date)
        for bid, values in reopen:
            s.execute(
                update(table)
                .where(table.c.id == bid)
                .values(
                    status=BreakStatus.OPEN,
                    resolved_at=None,
                    last_run_id=run_id,
                    differences=values["differences"],
                    amount=values["amount"],
                    internal_record=values["internal_record"],
                    external_record=values["external_record"],
                    as_of_date=run_date,
                    version=table.c.version + 1,
                    updated_at=now,
                    updated_by_id=actor.user_id,
                )
            )
            audit.record(
                s,
                actor,
                "breaks.reopen",
                "breaks",
                bid,
                before={"status": BreakStatus.RESOLVED.value},
                after={
                    "status": BreakStatus.OPEN.value,
                    "note": f"reopened by run {run_id}: the difference is back",
                },
            )
        for bid, note in resolve:
            s.execute(
                update(table)
                .where(table.c.id == bid)
                .values(
                    status=BreakStatus.RESOLVED,
                    resolved_at=now,
                    last_run_id=run_id,
                    version=table.c.version + 1,
                    updated_at=now,
                    updated_by_id=actor.user_id,
                )
            )
            audit.record(
                s,
                actor,
                "breaks.auto_resolve",
                "breaks",
                bid,
                after={"status": BreakStatus.RESOLVED.value, "note": note},
            )
        n_matches = _write_matches(s, run_id, def_id, result, now, closed_l, closed_r)
        stats = {
            "definition": def_name,
            "left_records": result.left.n,
            "right_records": result.right.n,
            "matched": result.matched_groups,
            "matched_by_pass": result.matched_by_pass(),
            "breaks": result.breaks_by_type(),
            "new_breaks": new_count,
            "still_open": len(refresh),
            "reopened": len(reopen),
            "resolved": len(resolve),
            "match_rows": n_matches,
            "pair_rows": n_pairs,
            "manual": extra["manual"],
            "out_of_coverage": extra["out_of_coverage"],
            "as_of": extra["as_of"].isoformat() if extra["as_of"] else None,
        }
        s.execute(
            update(ReconRun.__table__)
            .where(ReconRun.__table__.c.id == run_id)
            .values(status=RunStatus.COMPLETED, finished_at=utcnow(), stats=stats)
        )
        audit.record(s, actor, "recon.run", "recon_runs", run_id, after=stats, change=ChangeAction.INSERT)
        if new_count or refresh or reopen or resolve:
            audit.publish(s, actor, "breaks", None, ChangeAction.BULK, {"action": "recon.run", "run": run_id})
        if n_matches:
            audit.publish(
                s, actor, "recon_matches", None, ChangeAction.BULK, {"action": "recon.run", "run": run_id}
            )
    return {
        "run_id": run_id,
        "new": new_count,
        "still_open": len(refresh),
        "reopened": len(reopen),
        "resolved": len(resolve),
    }


def _fast_toast_compression(s: Session) -> None:
    """PostgreSQL: this transaction compresses what it stores out of line with LZ4 where the server has it.

    A run stores its 1:1 pairs as two JSON arrays of up to a million identities (some 12 MB each): the default
    compression (pglz) took 0.67 s of server time for a million pairs, LZ4 0.25 s (measured; the arrays come out a
    quarter larger). Reading them back is transparent. A server without LZ4 (built without it, or before version
    14, which has no such setting) keeps its default: the statement then sets nothing."""
    s.execute(
        text(
            "SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings"
            " WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )
    )


def _pair_columns(run_id: int, def_id: int, result: Any) -> list[list[Any]]:
    """The run's 1:1 pairs as ``recon_run_pairs`` columns: one row per pass, the two identity lists side by side
    (JSON arrays built in Arrow). Makes no query."""
    L, R = result.left, result.right
    pair_rows: list[list[Any]] = [[], [], [], [], [], []]
    for i, name in enumerate(result.pass_names):
        sel = np.flatnonzero(result.pair_pass == i)
        if not len(sel):
            continue
        lids, rids = _json_ids(L, result.pair_left[sel]), _json_ids(R, result.pair_right[sel])
        for col, v in zip(pair_rows, (run_id, def_id, name, len(sel), lids, rids), strict=True):
            col.append(v)
    return pair_rows


def _insert_pairs(s: Session, columns: Future[list[list[Any]]]) -> None:
    """Store the pair rows once they are made."""
    pair_rows = columns.result()
    if pair_rows[0]:
        bulk.insert_rows(
            s,
            "recon_run_pairs",
            ["run_id", "definition_id", "pass_name", "pairs", "left_refs", "right_refs"],
            pair_rows,
        )


def _write_matches(
    s: Session,
    run_id: int,
    def_id: int,
    result: Any,
    now: dt.datetime,
    closed_left: set[str],
    closed_right: set[str],
) -> int:
    """The ``recon_matches`` rows of a run: the aggregation groups and the pairs that closed a break (what people
    look at and may unmatch). Returns the number of rows."""
    L, R = result.left, result.right
    names = np.array(result.pass_names, dtype=object)
    pass_col: list[str] = []
    left_col: list[str] = []
    right_col: list[str] = []
    if closed_left or closed_right:  # the pairs that closed a break: a person will want to see them
        hit = np.zeros(len(result.pair_left), dtype=bool)
        if closed_left:
            hit |= _isin(L, result.pair_left, closed_left)
        if closed_right:
            hit |= _isin(R, result.pair_right, closed_right)
        ks = np.flatnonzero(hit)
        pl, pr = L.ids_at(result.pair_left[ks]).tolist(), R.ids_at(result.pair_right[ks]).tolist()
        for j, k in enumerate(ks.tolist()):
            pass_col.append(names[result.pair_pass[k]])
            left_col.append(json.dumps([pl[j]]))
            right_col.append(json.dumps([pr[j]]))
    if result.groups:  # identities of every group's records in one take per side, then split per group
        lids = L.ids_at(np.concatenate([g[1] for g in result.groups])).tolist()
        rids = R.ids_at(np.concatenate([g[2] for g in result.groups])).tolist()
        a = b = 0
        for name, lp, rp in result.groups:
            pass_col.append(name)
            left_col.append(json.dumps(lids[a : a + len(lp)]))
            right_col.append(json.dumps(rids[b : b + len(rp)]))
            a, b = a + len(lp), b + len(rp)
    n = len(pass_col)
    if n:
        stamp = bulk.timestamp(now, s)
        bulk.insert_rows(
            s,
            "recon_matches",
            ["run_id", "definition_id", "pass_name", "left_refs", "right_refs", "matched_at"],
            [[run_id] * n, [def_id] * n, pass_col, left_col, right_col, [stamp] * n],
        )
    return n


def _isin(side: Any, pos: np.ndarray, refs: set[str]) -> np.ndarray:
    """Which of the records at ``pos`` have an identity among ``refs`` (Arrow hashing where it can)."""
    arr = side.ids_arrow(pos)
    if arr is not None:
        found = pc.is_in(arr, value_set=pa.array(sorted(refs), type=arr.type))
        return found.to_numpy(zero_copy_only=False).astype(bool)
    return pd.Series(side.ids_at(pos), dtype=object).isin(list(refs)).to_numpy(dtype=bool)


def run_pairs(db: Database, actor: Actor, run_id: int) -> dict[str, list[tuple[str, str]]]:
    """Every one-to-one match a run made, by pass: [(internal identity, external identity), ...] (for audit)."""
    require(actor, Permission.VIEW)
    out: dict[str, list[tuple[str, str]]] = {}
    with db.read() as s:
        rows = s.execute(
            select(ReconRunPairs.pass_name, ReconRunPairs.left_refs, ReconRunPairs.right_refs)
            .where(ReconRunPairs.run_id == run_id)
            .order_by(ReconRunPairs.id)
        )
        for name, lrefs, rrefs in rows:
            out.setdefault(name, []).extend(zip(json.loads(lrefs), json.loads(rrefs), strict=True))
    return out


def age_business_days(
    opened_at: dt.datetime, today: dt.date | None = None, calendar: str = DESK_CALENDAR
) -> int:
    """How many business days of ``calendar`` a break has been open (0 on the day it opened)."""
    today = today or dt.datetime.now(dt.UTC).date()
    start = opened_at.astimezone(dt.UTC).date()
    if today <= start:
        return 0
    return int(get_calendar(calendar).business_days_between(start, today))


def seed_demo(db: Database, actor: Actor, *, as_of: dt.date | None = None) -> dict[str, RunResult]:
    """Create the default definitions and run each once on the demo book, so the break work list is not empty."""
    defs.ensure_default_definitions(db, actor)
    return {name: run_recon(db, actor, name, as_of=as_of) for name in defs.DEFAULTS}


__all__ = ["RunResult", "age_business_days", "fingerprint", "run_pairs", "run_recon", "seed_demo"]
