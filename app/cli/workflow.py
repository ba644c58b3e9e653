"""``opsdesk breaks …`` and ``opsdesk corrections …``: working breaks and the four-eyes approvals from the shell.

    opsdesk [--user NAME] breaks list [--status S …] [--mine] [--unassigned] [--definition ID] [--limit N]
    opsdesk --user NAME breaks claim|release ID
    opsdesk --user NAME breaks assign ID USERNAME
    opsdesk --user NAME breaks categorise ID --version V [--category C] [--root-cause CODE]
    opsdesk --user NAME breaks comment ID TEXT
    opsdesk [--user NAME] breaks history ID | candidates ID
    opsdesk [--user NAME] corrections list [--mine] [--status S]
    opsdesk [--user NAME] corrections show ID
    opsdesk --user NAME corrections propose KIND ITEM_TYPE ITEM_ID --reason R [--set FIELD=VALUE …]
                                    [--break ID …] [--amount X] [--new-ref REF] [--version V]
    opsdesk --user NAME corrections approve ID [ID …] [--comment C]
    opsdesk --user NAME corrections reject ID [ID …] --comment C
    opsdesk --user NAME corrections withdraw ID
    opsdesk [--user NAME] corrections thresholds [--set CCY=AMOUNT …]   (CCY * : every other currency)

Exit codes: 0 done; 1 refused (the message says why; for several ids, when any one was refused); 2 usage;
3 database unavailable. ``--json`` prints the summary (ids, statuses, refusals) for scripts.
"""

from __future__ import annotations

import argparse
from typing import Any

from app.models.enums import CorrectionKind, Decision
from app.services.permissions import SYSTEM, Actor

from .common import CliContext, CommandFailed


def register(sub: argparse._SubParsersAction) -> None:
    br = sub.add_parser("breaks", help="work reconciliation breaks: list, claim, assign, comment, history")
    bsub = br.add_subparsers(dest="breaks_command", metavar="ACTION", required=True)
    ls = bsub.add_parser("list", help="list breaks (by default those still being worked), oldest first")
    ls.add_argument(
        "--status", action="append", default=[], help="OPEN, ASSIGNED, PROPOSED, RESOLVED, WRITTEN_OFF"
    )
    ls.add_argument("--mine", action="store_true", help="only the breaks claimed by --user")
    ls.add_argument("--unassigned", action="store_true", help="only breaks nobody has claimed")
    ls.add_argument("--definition", type=int, metavar="ID", help="only this recon definition's breaks")
    ls.add_argument("--limit", type=int, default=200)
    ls.set_defaults(handler=breaks_list)
    for name, text in (
        ("claim", "claim a break (exactly one clerk wins)"),
        ("release", "release a claimed break"),
    ):
        p = bsub.add_parser(name, help=text)
        p.add_argument("id", type=int)
        p.set_defaults(handler=breaks_claim if name == "claim" else breaks_release)
    asg = bsub.add_parser("assign", help="give a break to a clerk (supervisors)")
    asg.add_argument("id", type=int)
    asg.add_argument("username")
    asg.set_defaults(handler=breaks_assign)
    cat = bsub.add_parser("categorise", help="set a break's category and root-cause code (versioned edit)")
    cat.add_argument("id", type=int)
    cat.add_argument("--version", type=int, required=True, help="the version you looked at (see breaks list)")
    cat.add_argument("--category")
    cat.add_argument("--root-cause", metavar="CODE", help="DQUA, DMON, DDAT, ...")
    cat.set_defaults(handler=breaks_categorise)
    com = bsub.add_parser("comment", help="add a comment to a break")
    com.add_argument("id", type=int)
    com.add_argument("text")
    com.set_defaults(handler=breaks_comment)
    his = bsub.add_parser("history", help="a break's history: audit entries, corrections, comments, files")
    his.add_argument("id", type=int)
    his.set_defaults(handler=breaks_history)
    cand = bsub.add_parser("candidates", help="open breaks of the other side closest to a missing record")
    cand.add_argument("id", type=int)
    cand.add_argument("--limit", type=int, default=10)
    cand.set_defaults(handler=breaks_candidates)

    co = sub.add_parser("corrections", help="corrections under four-eyes control: propose, approve, reject")
    csub = co.add_subparsers(dest="corrections_command", metavar="ACTION", required=True)
    cl = csub.add_parser("list", help="pending corrections (the approvals inbox), or those of a status")
    cl.add_argument("--mine", action="store_true", help="only those proposed by --user")
    cl.add_argument("--status", help="PENDING (default), APPROVED, REJECTED, WITHDRAWN")
    cl.add_argument("--limit", type=int, default=200)
    cl.set_defaults(handler=corrections_list)
    sh = csub.add_parser("show", help="one correction with its before/after")
    sh.add_argument("id", type=int)
    sh.set_defaults(handler=corrections_show)
    pr = csub.add_parser("propose", help="propose a correction for a supervisor to approve")
    pr.add_argument("kind", type=str.upper, choices=[k.value for k in CorrectionKind])
    pr.add_argument("item_type", help="trades, breaks or recon_matches (trade, break, match)")
    pr.add_argument("item_id", type=int)
    pr.add_argument("--reason", required=True)
    pr.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="trade field to correct"
    )
    pr.add_argument(
        "--break",
        dest="breaks",
        action="append",
        type=int,
        default=[],
        metavar="ID",
        help="further break: matched with the item (MANUAL_MATCH) or resolved by the amendment",
    )
    pr.add_argument("--amount", help="write-off amount (default: the amount at stake)")
    pr.add_argument("--new-ref", help="trade reference of the rebooked copy (CANCEL_REBOOK)")
    pr.add_argument(
        "--version", type=int, help="the item version you looked at (refused if it changed since)"
    )
    pr.set_defaults(handler=corrections_propose)
    ap = csub.add_parser("approve", help="approve corrections (several ids: a bulk decision)")
    ap.add_argument("ids", type=int, nargs="+")
    ap.add_argument("--comment", default="")
    ap.set_defaults(handler=corrections_approve)
    rj = csub.add_parser("reject", help="reject corrections with a comment for the maker")
    rj.add_argument("ids", type=int, nargs="+")
    rj.add_argument("--comment", required=True)
    rj.set_defaults(handler=corrections_reject)
    wd = csub.add_parser("withdraw", help="withdraw your own pending correction")
    wd.add_argument("id", type=int)
    wd.add_argument("--comment", default="")
    wd.set_defaults(handler=corrections_withdraw)
    th = csub.add_parser(
        "thresholds", help="amounts above which a correction needs a second approver; --set (supervisors)"
    )
    th.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="CCY=AMOUNT",
        help="set a currency's threshold (* for every currency without its own); repeatable",
    )
    th.set_defaults(handler=corrections_thresholds)


def _reader(ctx: CliContext) -> Actor:
    return ctx.actor() if ctx.args.user else SYSTEM


# --- breaks -----------------------------------------------------------------------------------------------------


def breaks_list(ctx: CliContext) -> int:
    from app.services.workflow.breaks import list_breaks

    a = ctx.args
    actor = ctx.actor() if (a.user or a.mine) else SYSTEM
    kwargs: dict[str, Any] = {"mine": a.mine, "unassigned": a.unassigned, "definition_id": a.definition}
    if a.status:
        kwargs["statuses"] = tuple(a.status)
    rows = list_breaks(ctx.database(), actor, limit=a.limit, **kwargs)
    lines = [
        f"#{r.id:<6} {r.status:<11} {r.break_type:<16} {r.internal_ref or '—':<16} {r.external_ref or '—':<16} "
        f"{r.amount:>16} {r.currency or '':<3} {r.owner or '(unclaimed)':<12} v{r.version}"
        for r in rows
    ]
    ctx.emit(
        {"ok": True, "count": len(rows), "breaks": [r.__dict__ for r in rows]},
        "\n".join(lines) or "No breaks.",
    )
    return 0


def breaks_claim(ctx: CliContext) -> int:
    from app.services.workflow.breaks import claim_break

    actor = ctx.actor()
    version = claim_break(ctx.database(), actor, ctx.args.id)
    ctx.emit(
        {"ok": True, "break": ctx.args.id, "owner": actor.username, "version": version},
        f"Break #{ctx.args.id} is yours (version {version}).",
    )
    return 0


def breaks_release(ctx: CliContext) -> int:
    from app.services.workflow.breaks import release_break

    version = release_break(ctx.database(), ctx.actor(), ctx.args.id)
    ctx.emit({"ok": True, "break": ctx.args.id, "version": version}, f"Break #{ctx.args.id} released.")
    return 0


def breaks_assign(ctx: CliContext) -> int:
    from app.services.workflow.breaks import assign_break, user_id_of

    db = ctx.database()
    actor = ctx.actor()
    version = assign_break(db, actor, ctx.args.id, user_id_of(db, ctx.args.username))
    ctx.emit(
        {"ok": True, "break": ctx.args.id, "owner": ctx.args.username, "version": version},
        f"Break #{ctx.args.id} assigned to {ctx.args.username}.",
    )
    return 0


def breaks_categorise(ctx: CliContext) -> int:
    from app.services.workflow.breaks import set_category

    a = ctx.args
    version = set_category(
        ctx.database(), ctx.actor(), a.id, a.category, a.root_cause, seen_version=a.version
    )
    ctx.emit({"ok": True, "break": a.id, "version": version}, f"Break #{a.id} filed (version {version}).")
    return 0


def breaks_comment(ctx: CliContext) -> int:
    from app.services.workflow.comments import add_comment

    cid = add_comment(ctx.database(), ctx.actor(), "breaks", ctx.args.id, ctx.args.text)
    ctx.emit({"ok": True, "break": ctx.args.id, "comment": cid}, f"Comment added to break #{ctx.args.id}.")
    return 0


def breaks_history(ctx: CliContext) -> int:
    from app.services.workflow.breaks import history

    lines = history(ctx.database(), _reader(ctx), "breaks", ctx.args.id)
    ctx.emit(
        {
            "ok": True,
            "break": ctx.args.id,
            "history": [
                {"at": x.at, "who": x.who, "kind": x.kind, "action": x.action, "text": x.text} for x in lines
            ],
        },
        "\n".join(f"{x.when}  {x.who:<12} {x.text}" for x in lines) or "No history.",
    )
    return 0


def breaks_candidates(ctx: CliContext) -> int:
    from app.services.workflow.candidates import candidates

    found = candidates(ctx.database(), _reader(ctx), ctx.args.id, limit=ctx.args.limit)
    ctx.emit(
        {"ok": True, "break": ctx.args.id, "candidates": [c.__dict__ for c in found]},
        "\n".join(f"#{c.break_id:<6} {c.score:>3}  {c.ref or '—':<16} {'; '.join(c.reasons)}" for c in found)
        or "No candidates.",
    )
    return 0


# --- corrections ------------------------------------------------------------------------------------------------


def _view_dict(v: Any) -> dict[str, Any]:
    d = dict(v.__dict__)
    d["changes"] = [c.__dict__ for c in v.changes]
    return d


def _view_line(v: Any) -> str:
    approvals = f"{len(v.approvers)}/{v.required_approvals}"
    return (
        f"#{v.id:<5} {v.status:<9} {v.kind:<13} {v.item_label:<18} {v.amount:>16} {v.currency or '':<3} "
        f"by {v.maker:<10} approvals {approvals}  {v.reason}"
    )


def corrections_list(ctx: CliContext) -> int:
    from app.services.workflow.corrections import corrections, pending

    a = ctx.args
    actor = ctx.actor() if (a.user or a.mine) else SYSTEM
    if a.status and a.status.upper() != "PENDING":
        rows = corrections(ctx.database(), actor, status=a.status, limit=a.limit)
        if a.mine:
            rows = [r for r in rows if r.maker_id == actor.user_id]
    else:
        rows = pending(ctx.database(), actor, mine=a.mine)[: a.limit]
    ctx.emit(
        {"ok": True, "count": len(rows), "corrections": [_view_dict(v) for v in rows]},
        "\n".join(_view_line(v) for v in rows) or "No corrections.",
    )
    return 0


def corrections_show(ctx: CliContext) -> int:
    from app.services.workflow.corrections import describe

    v = describe(ctx.database(), _reader(ctx), ctx.args.id)
    text = [_view_line(v), f"  reason: {v.reason}"]
    text += [f"  {c.field}: {c.before if c.before is not None else '—'} → {c.after}" for c in v.changes]
    if v.decision_comment:
        text.append(f"  decision: {v.decision_comment}")
    ctx.emit({"ok": True, "correction": _view_dict(v)}, "\n".join(text))
    return 0


def corrections_propose(ctx: CliContext) -> int:
    from app.services.workflow.corrections import propose

    a = ctx.args
    kind = CorrectionKind(a.kind)
    payload: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for item in a.set:
        if "=" not in item:
            raise CommandFailed(f"--set {item}: write FIELD=VALUE (for example quantity=120).", 2)
        name, value = item.split("=", 1)
        fields[name.strip()] = value.strip()
    if fields:
        payload["fields"] = fields
    if a.breaks:
        payload["break_ids"] = a.breaks
    if a.amount is not None:
        payload["amount"] = a.amount
    if a.new_ref:
        payload["new_trade_ref"] = a.new_ref
    actor = ctx.actor()
    cid = propose(
        ctx.database(), actor, kind, a.item_type, a.item_id, payload, a.reason, seen_version=a.version
    )
    ctx.emit(
        {"ok": True, "correction": cid, "kind": kind.value, "status": "PENDING", "by": actor.username},
        f"Correction #{cid} ({kind.value}) proposed; it waits for a supervisor.",
    )
    return 0


def _decide(ctx: CliContext, decision: Decision) -> int:
    from app.services.workflow.corrections import approve, bulk_decide, reject

    a = ctx.args
    db, actor = ctx.database(), ctx.actor()
    if len(a.ids) == 1:
        cid = a.ids[0]
        if decision == Decision.APPROVE:
            status = approve(db, actor, cid, a.comment).value
        else:
            reject(db, actor, cid, a.comment)
            status = "REJECTED"
        text = (
            f"Correction #{cid}: first approval recorded; it needs a second approver."
            if status == "PENDING"
            else f"Correction #{cid} {status.lower()}."
        )
        ctx.emit({"ok": True, "decided": [cid], "refused": {}, "status": status}, text)
        return 0
    result = bulk_decide(db, actor, a.ids, decision, a.comment)
    verb = "approved" if decision == Decision.APPROVE else "rejected"
    text = [f"{verb}: {', '.join(f'#{i}' for i in result.decided) or 'none'}"]
    text += [f"  #{i} refused: {why}" for i, why in result.refused.items()]
    code = 0 if result.all_done else 1
    ctx.emit(
        {"ok": result.all_done, "decided": result.decided, "refused": result.refused, "exit_code": code},
        "\n".join(text),
    )
    return code


def corrections_approve(ctx: CliContext) -> int:
    return _decide(ctx, Decision.APPROVE)


def corrections_reject(ctx: CliContext) -> int:
    return _decide(ctx, Decision.REJECT)


def corrections_withdraw(ctx: CliContext) -> int:
    from app.services.workflow.corrections import withdraw

    withdraw(ctx.database(), ctx.actor(), ctx.args.id, ctx.args.comment)
    ctx.emit(
        {"ok": True, "correction": ctx.args.id, "status": "WITHDRAWN"},
        f"Correction #{ctx.args.id} withdrawn.",
    )
    return 0


def corrections_thresholds(ctx: CliContext) -> int:
    from app.services.workflow.corrections import set_threshold, thresholds

    db = ctx.database()
    if ctx.args.assignments:
        actor = ctx.actor()
        for item in ctx.args.assignments:
            currency, sep, amount = item.partition("=")
            if not sep or not amount.strip():
                raise CommandFailed(f"--set {item!r}: write CURRENCY=AMOUNT, e.g. --set EUR=250000", 2)
            set_threshold(db, actor, currency, amount.strip())
    else:
        actor = _reader(ctx)
    current = thresholds(db, actor)
    lines = [f"{ccy:>3}  above {amount:,} needs two approvers" for ccy, amount in sorted(current.items())]
    ctx.emit(
        {"ok": True, "thresholds": {ccy: str(amount) for ccy, amount in current.items()}},
        "\n".join(lines) or "No threshold: one approver is enough for every correction.",
    )
    return 0
