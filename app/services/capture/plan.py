"""What an import will write: trades to create or update, their new versions, and what became of every line.

Both sources end here. A CSV/XLSX line or a FIX execution either contributes to a trade (a row of the plan, which
validation and enrichment then complete), is a duplicate of what is already captured, is rejected, or is skipped.

For files (see profiles.py for the convention), lines are split in two:

* the fast path, vectorised: a reference that is new to the database and appears once in the file is a new trade
  (version 1, NEW);
* the ordered path, for references already in the database or repeated in the file: their lines are applied in
  line order to the trade's state (from the database, locked with ``FOR UPDATE`` on PostgreSQL): the same content
  again is a duplicate, different content an amendment (a new version, AMEND), CANCEL cancels (version CANCEL,
  status CANCELLED). A trade past VALIDATED (confirmed, instructed, settled ...) or cancelled is not changed by a
  file: its amendment is rejected (TRADE_LOCKED) and needs the correction workflow. There are few such lines.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from app.models.enums import TradeStatus

from .convert import INCOMING_COLUMNS
from .readers import Problem, RawTable
from .units import PRICE_SCALE, QTY_SCALE, frame_of, from_decimal, records_frame

# Statuses in which the front office may still amend or cancel a trade through a file or FIX.
OPEN_STATUSES = frozenset({TradeStatus.REPAIR.value, TradeStatus.VALIDATED.value})

PLAN_EXTRA = (
    "trade_id",
    "fo_version",
    "row_version",
    "cancelled",
    "status_only",
    "prior_status",
    "notional_14",
)
ROW, DUPLICATE, REJECTED, SKIPPED = "row", "duplicate", "rejected", "skipped"

# Fields compared to tell a duplicate from an amendment (blank currency / order ref / counterparty in the file
# mean "as before").
COMPARED = ("isin", "account_code", "side", "qty_u", "px_u", "trade_date", "trade_time")


@dataclass
class Plan:
    rows: pd.DataFrame  # INCOMING_COLUMNS + PLAN_EXTRA
    versions: pd.DataFrame  # row, fo_version, action, source_ref, payload (JSON text)
    line_no: np.ndarray  # every line (or message) of the file that carried data
    line_kind: np.ndarray  # ROW, DUPLICATE, REJECTED or SKIPPED
    line_row: np.ndarray  # the plan row a ROW line went into (-1 otherwise)
    line_ref: np.ndarray  # the trade reference of the line ('' if none)
    problems: list[Problem] = field(default_factory=list)  # why rejected lines were rejected
    notes: dict[int, str] = field(default_factory=dict)  # line -> why it is a duplicate or skipped


def existing_trades(session: Any, refs: list[str], *, lock: bool) -> pd.DataFrame:
    """The trades already captured under these references (one query per 100,000 references)."""
    from sqlalchemy import text

    cols = (
        "id, trade_ref, status, fo_version, version, source, isin, account_code, counterparty_code, side, "
        "quantity, price, currency, trade_date, trade_time, order_ref"
    )
    out: list[Any] = []
    dialect = session.get_bind().dialect.name
    for i in range(0, len(refs), 100_000):
        chunk = refs[i : i + 100_000]
        if dialect == "postgresql":
            # One JSON text parameter too: psycopg's Python array dumper took 1.6 s per 100,000 references.
            q = text(
                f"SELECT {cols} FROM trades WHERE trade_ref IN "
                "(SELECT json_array_elements_text(CAST(:refs AS json)))" + (" FOR UPDATE" if lock else "")
            )
            out.extend(session.execute(q, {"refs": json.dumps(chunk)}).all())
        else:
            # One JSON array parameter: no limit on the number of SQL variables.
            q = text(f"SELECT {cols} FROM trades WHERE trade_ref IN (SELECT value FROM json_each(:refs))")
            out.extend(session.execute(q, {"refs": json.dumps(chunk)}).all())
    names = [c.strip() for c in cols.split(",")]
    frame = frame_of({n: [r[i] for r in out] for i, n in enumerate(names)})
    if frame.empty:
        return frame
    frame["qty_u"] = [
        from_decimal(Decimal(str(v)).quantize(Decimal(1).scaleb(-QTY_SCALE)), QTY_SCALE)
        for v in frame["quantity"]
    ]
    frame["px_u"] = [
        from_decimal(Decimal(str(v)).quantize(Decimal(1).scaleb(-PRICE_SCALE)), PRICE_SCALE)
        for v in frame["price"]
    ]
    frame["trade_date"] = pd.to_datetime(frame["trade_date"]).to_numpy().astype("datetime64[D]")
    frame["trade_time"] = [_naive_utc(v) for v in frame["trade_time"]]
    frame["order_ref"] = frame["order_ref"].fillna("")
    return frame


def _naive_utc(value: Any) -> np.datetime64:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return np.datetime64(value, "us")


# --- payloads --------------------------------------------------------------------------------------------------------

_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


def csv_payloads(raw: RawTable, raw_rows: np.ndarray, lines: np.ndarray, batch_id: int) -> list[str]:
    """The version payload of each line, exactly as the front office sent it, with file, line and batch.

    Unquoted CSV: the line's text (``raw``), which trade_detail maps back to fields with the header kept in the
    batch's summary. Quoted CSV and XLSX: the line's values by column header (``fields``). Built with one string
    template per line rather than a json.dumps per dict (a million lines); values are JSON-escaped only when the
    file holds characters that need it.
    """
    file_json = json.dumps(raw.file_name, ensure_ascii=False).replace("%", "%%")
    head = "{" + f'"file":{file_json},"batch":{int(batch_id)},"line":%d,'
    if raw.raw_lines is not None:
        text = [raw.raw_lines[i - 1] for i in lines.tolist()]
        if raw.json_safe:
            template = head + '"raw":"%s"}'
            return [template % t for t in zip(lines.tolist(), text, strict=True)]
        template = head + '"raw":%s}'
        return [
            template % (ln, json.dumps(t, ensure_ascii=False))
            for ln, t in zip(lines.tolist(), text, strict=True)
        ]
    names = list(raw.frame.columns)
    headers = {c: raw.profile.columns.get(c, c) for c in names}
    parts: list[str] = []
    cols: list[Any] = []
    for name in names:
        col = np.asarray(raw.frame[name].to_numpy(dtype=object), dtype=object)[raw_rows]
        key = json.dumps(headers[name], ensure_ascii=False).replace("%", "%%")
        if _NEEDS_ESCAPE.search("".join(col.tolist())):
            codes, uniques = pd.factorize(col, use_na_sentinel=False)
            esc = np.array([json.dumps(u, ensure_ascii=False) for u in uniques], dtype=object)
            cols.append(esc[codes].tolist())
            parts.append(f"{key}:%s")
        else:
            cols.append(col.tolist())
            parts.append(f'{key}:"%s"')
    template = head + '"fields":{' + ",".join(parts) + "}}"
    return [template % t for t in zip(lines.tolist(), *cols, strict=True)]


# --- files -----------------------------------------------------------------------------------------------------------


def _same(state: dict[str, Any], line: dict[str, Any]) -> bool:
    """Same content: every compared field equal; a blank currency, order ref or counterparty means "as before"."""
    if any(state[f] != line[f] for f in COMPARED):
        return False
    return all(not line[f] or state[f] == line[f] for f in ("currency", "order_ref", "counterparty_code"))


def plan_file(
    incoming: pd.DataFrame,
    payloads: list[str],
    existing: pd.DataFrame,
    *,
    rejected: list[Problem],
    skipped_lines: np.ndarray,
) -> Plan:
    """Decide, line by line, what a CSV/XLSX file does (see the module docstring)."""
    n = len(incoming)
    refs = incoming["trade_ref"].to_numpy(dtype=object)
    action = incoming["action"].to_numpy(dtype=object)
    known = set(existing["trade_ref"]) if len(existing) else set()
    in_db = pd.Series(refs, dtype=object).isin(known).to_numpy() if known else np.zeros(n, dtype=bool)
    repeated = pd.Series(refs).duplicated(keep=False).to_numpy() if n else np.zeros(0, dtype=bool)
    ordered = in_db | repeated
    fast = ~ordered & (action != "CANCEL")
    cancel_unknown = ~ordered & (action == "CANCEL")

    kind = np.full(n, ROW, dtype=object)
    row_of = np.full(n, -1, dtype=np.int64)
    problems = list(rejected)
    notes: dict[int, str] = {}
    lines = incoming["line"].to_numpy(dtype=np.int64)

    fast_idx = np.flatnonzero(fast)
    rows = incoming.iloc[fast_idx].reset_index(drop=True)
    rows["trade_id"] = -1
    rows["fo_version"] = 1
    rows["row_version"] = 0
    rows["cancelled"] = False
    rows["status_only"] = False
    rows["prior_status"] = None
    rows["notional_14"] = None
    row_of[fast_idx] = np.arange(len(fast_idx))
    v_rows: list[Any] = [np.arange(len(fast_idx))]
    v_fo: list[Any] = [np.ones(len(fast_idx), dtype=np.int64)]
    v_action: list[Any] = [np.full(len(fast_idx), "NEW", dtype=object)]
    v_ref: list[Any] = [incoming["source_ref"].to_numpy(dtype=object)[fast_idx]]
    v_payload: list[Any] = [np.asarray(payloads, dtype=object)[fast_idx] if n else np.zeros(0, dtype=object)]

    for i in np.flatnonzero(cancel_unknown):
        kind[i] = REJECTED
        problems.append(
            Problem(
                int(lines[i]),
                "trade_ref",
                "UNKNOWN_TRADE",
                f"cannot cancel trade {refs[i]}: it was never captured",
            )
        )

    # Ordered path: references already captured, or repeated within the file.
    extra_rows: list[dict[str, Any]] = []
    extra_versions: list[tuple[int, int, str, str, str]] = []
    by_ref = existing.set_index("trade_ref") if len(existing) else None
    ordered_idx = np.flatnonzero(ordered)
    if ordered_idx.size:
        sub = incoming.iloc[ordered_idx].copy()
        sub["_pos"] = ordered_idx
        records = sub.to_dict("records")
        groups: dict[str, list[dict[str, Any]]] = {}
        for rec in records:
            groups.setdefault(rec["trade_ref"], []).append(rec)
        base = len(rows)
        for ref, recs in groups.items():
            state: dict[str, Any] | None = None
            db_row = by_ref.loc[ref] if by_ref is not None and ref in by_ref.index else None
            if db_row is not None:
                state = {
                    c: db_row[c]
                    for c in (
                        "isin",
                        "account_code",
                        "counterparty_code",
                        "side",
                        "qty_u",
                        "px_u",
                        "currency",
                        "trade_date",
                        "trade_time",
                        "order_ref",
                    )
                }
                state.update(
                    trade_id=int(db_row["id"]),
                    fo_version=int(db_row["fo_version"]),
                    row_version=int(db_row["version"]),
                    prior_status=str(db_row["status"]),
                    cancelled=str(db_row["status"]) == TradeStatus.CANCELLED.value,
                    locked=str(db_row["status"]) not in OPEN_STATUSES,
                    fields_from_file=None,
                    changed=False,
                )
            new_versions: list[tuple[int, str, str, str]] = []  # fo_version, action, source_ref, payload
            contributing: list[int] = []
            for rec in sorted(recs, key=lambda r: r["line"]):
                pos, line = int(rec["_pos"]), int(rec["line"])
                act = rec["action"]
                if state is None:
                    if act == "CANCEL":
                        kind[pos] = REJECTED
                        problems.append(
                            Problem(
                                line,
                                "trade_ref",
                                "UNKNOWN_TRADE",
                                f"cannot cancel trade {ref}: it was never captured",
                            )
                        )
                        continue
                    state = dict(rec)
                    state.update(
                        trade_id=-1,
                        fo_version=1,
                        row_version=0,
                        prior_status=None,
                        cancelled=False,
                        locked=False,
                        fields_from_file=rec,
                        changed=True,
                    )
                    new_versions.append((1, "NEW", rec["source_ref"], payloads[pos]))
                    contributing.append(pos)
                    continue
                if act == "CANCEL":
                    if state["cancelled"]:
                        kind[pos] = DUPLICATE
                        notes[line] = f"trade {ref} is already cancelled"
                        continue
                    if state["locked"]:
                        kind[pos] = REJECTED
                        problems.append(_locked(line, ref, state["prior_status"], "cancelled"))
                        continue
                    state["cancelled"] = True
                    state["changed"] = True
                    state["fo_version"] += 1
                    new_versions.append((state["fo_version"], "CANCEL", rec["source_ref"], payloads[pos]))
                    contributing.append(pos)
                    continue
                if _same(state, rec):
                    kind[pos] = DUPLICATE
                    notes[line] = f"trade {ref} was already captured with the same content"
                    continue
                if state["cancelled"] or state["locked"]:
                    kind[pos] = REJECTED
                    status = TradeStatus.CANCELLED.value if state["cancelled"] else state["prior_status"]
                    problems.append(_locked(line, ref, status, "amended"))
                    continue
                for c in (
                    "isin",
                    "account_code",
                    "side",
                    "qty_u",
                    "px_u",
                    "trade_date",
                    "trade_time",
                    "settle_given",
                    "cpty_lei",
                    "cpty_bic",
                    "line",
                    "source_ref",
                ):
                    state[c] = rec[c]
                for c in ("currency", "order_ref", "counterparty_code"):
                    if rec[c]:
                        state[c] = rec[c]
                state["fields_from_file"] = rec
                state["changed"] = True
                state["fo_version"] += 1
                new_versions.append((state["fo_version"], "AMEND", rec["source_ref"], payloads[pos]))
                contributing.append(pos)
            if state is None or not state["changed"]:
                continue
            row_index = base + len(extra_rows)
            status_only = state["trade_id"] >= 0 and state["fields_from_file"] is None
            last = state["fields_from_file"] or {}
            extra_rows.append(
                {
                    **{c: state.get(c, last.get(c)) for c in INCOMING_COLUMNS},
                    "line": int(last.get("line", recs[-1]["line"])),
                    "source_ref": new_versions[-1][2],
                    "action": new_versions[-1][1],
                    "cpty_lei": state.get("cpty_lei", "") or "",
                    "cpty_bic": state.get("cpty_bic", "") or "",
                    "settle_given": state.get("settle_given", np.datetime64("NaT")),
                    "trade_id": state["trade_id"],
                    "fo_version": state["fo_version"],
                    "row_version": state["row_version"],
                    "cancelled": state["cancelled"],
                    "status_only": status_only,
                    "prior_status": state["prior_status"],
                    "notional_14": None,
                }
            )
            for pos in contributing:
                row_of[pos] = row_index
            for fo, act, sref, payload in new_versions:
                extra_versions.append((row_index, fo, act, sref, payload))
    if extra_rows:
        extra = records_frame(extra_rows)
        extra["trade_date"] = pd.to_datetime(extra["trade_date"]).to_numpy().astype("datetime64[D]")
        extra["settle_given"] = pd.to_datetime(extra["settle_given"]).to_numpy().astype("datetime64[D]")
        extra["trade_time"] = pd.to_datetime(extra["trade_time"]).to_numpy().astype("datetime64[us]")
        rows = pd.concat([rows, extra], ignore_index=True) if len(rows) else extra
        v_rows.append(np.array([v[0] for v in extra_versions], dtype=np.int64))
        v_fo.append(np.array([v[1] for v in extra_versions], dtype=np.int64))
        v_action.append(np.array([v[2] for v in extra_versions], dtype=object))
        v_ref.append(np.array([v[3] for v in extra_versions], dtype=object))
        v_payload.append(np.array([v[4] for v in extra_versions], dtype=object))
    versions = frame_of(
        {
            "row": np.concatenate(v_rows),
            "fo_version": np.concatenate(v_fo),
            "action": np.concatenate(v_action),
            "source_ref": np.concatenate(v_ref),
            "payload": np.concatenate(v_payload),
        }
    )
    kind[(kind == ROW) & (row_of < 0)] = REJECTED  # defensive: every ROW line has a row
    # Lines refused before planning (unreadable values, wrong shape) and blank lines complete the picture.
    rej_lines = np.array(sorted({p.line for p in rejected}), dtype=np.int64)
    all_lines = np.concatenate([lines, rej_lines, skipped_lines.astype(np.int64)])
    all_kind = np.concatenate(
        [
            kind,
            np.full(rej_lines.size, REJECTED, dtype=object),
            np.full(skipped_lines.size, SKIPPED, dtype=object),
        ]
    )
    all_row = np.concatenate([row_of, np.full(rej_lines.size + skipped_lines.size, -1, dtype=np.int64)])
    all_ref = np.concatenate([refs, np.full(rej_lines.size + skipped_lines.size, "", dtype=object)])
    order = np.argsort(all_lines, kind="stable")
    return Plan(
        rows=rows,
        versions=versions,
        line_no=all_lines[order],
        line_kind=all_kind[order],
        line_row=all_row[order],
        line_ref=all_ref[order],
        problems=problems,
        notes=notes,
    )


def _locked(line: int, ref: str, status: str | None, verb: str) -> Problem:
    if status == TradeStatus.CANCELLED.value:
        why = f"trade {ref} is cancelled and cannot be {verb}; book it under a new reference"
    else:
        why = (
            f"trade {ref} is {status}: past validation it cannot be {verb} by a file; "
            "propose a correction (amend or cancel and rebook) instead"
        )
    return Problem(line, "trade_ref", "TRADE_LOCKED", why)
