"""``opsdesk import messages`` and ``opsdesk export messages``: settlement messages from the shell.

    opsdesk --user clerk1 import messages FILE... [--as-of YYYY-MM-DD] [--csv-profile FILE.json] [--json]
    opsdesk --user clerk1 export messages --format mt|sese023 --out DIR [--batch] [--id N ...] [--json]

``import messages`` reads MT544-548 (FIN), sese.024/025 (XML) and custodian CSV files, one transaction per file.
Exit codes: 0 every message was applied (or was a duplicate); 4 some were quarantined or unmatched (listed, and
kept for clerks); 1 every file was refused (binary, empty) or the import was refused; 2 usage; 3 database
unavailable. ``--json`` prints the counts (applied, unmatched, quarantined, duplicates, per type) and the issues.

``export messages`` writes MT540-543 or sese.023 for every INSTRUCTED instruction (or the ``--id`` ones), one file
per message or one ``--batch`` file, and records them as sent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from .common import CliContext, CommandFailed, group, json_flag

EXIT_SOME_NOT_APPLIED = 4
SHOWN_ISSUES = 50


def register(sub: argparse._SubParsersAction) -> None:
    imp = group(sub, "import").add_parser(
        "messages",
        help="import settlement status advices and confirmations (MT544-548, sese.024/025, custodian CSV)",
        description="Import settlement messages: each is matched to its instruction and applied, quarantined "
        "with the reason, or recognised as a duplicate. One transaction per file.",
    )
    imp.add_argument("files", nargs="+", metavar="FILE", help="files to import")
    imp.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the day of status advices that carry no date (default today)",
    )
    imp.add_argument(
        "--csv-profile",
        metavar="FILE.json",
        help='custodian CSV column mapping: {"columns": {"related_reference": "Our Ref", ...}, "delimiter": ";"}',
    )
    json_flag(imp)
    imp.set_defaults(handler=run_import)

    exp = group(sub, "export").add_parser(
        "messages",
        help="write MT540-543 or sese.023 for instructed settlement instructions",
        description="Write the outgoing settlement instructions of every INSTRUCTED item, checked against the "
        "structure of their format, and record them as sent.",
    )
    exp.add_argument("--format", required=True, choices=["mt", "sese023"], dest="fmt")
    exp.add_argument("--out", required=True, metavar="DIR", help="directory to write the files into")
    exp.add_argument("--batch", action="store_true", help="one file holding every message")
    exp.add_argument(
        "--id", type=int, action="append", dest="ids", metavar="N", help="only this instruction id"
    )
    json_flag(exp)
    exp.set_defaults(handler=run_export)


def _profile(path: str | None):  # type: ignore[no-untyped-def]
    from app.services.settlement.messages import DEFAULT_CSV_PROFILE, CsvProfile

    if not path:
        return None
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CommandFailed(f"{path}: cannot read the CSV profile ({err})", 2) from None
    columns = {**DEFAULT_CSV_PROFILE.columns, **spec.get("columns", {})}
    return CsvProfile(
        name=spec.get("name", Path(path).stem),
        delimiter=spec.get("delimiter", ","),
        date_format=spec.get("date_format", "%Y-%m-%d"),
        decimal_comma=bool(spec.get("decimal_comma", False)),
        columns=columns,
    )


def run_import(ctx: CliContext) -> int:
    from app.services.settlement.messages import import_messages

    a = ctx.args
    missing = [f for f in a.files if not Path(f).is_file()]
    if missing:
        raise CommandFailed(f"No such file: {', '.join(missing)}", 2)
    actor = ctx.actor()
    result = import_messages(
        ctx.database(), actor, a.files, as_of=a.as_of, csv_profile=_profile(a.csv_profile)
    )
    if result.refused_files and len(result.refused_files) == result.files:
        code = 1
    elif result.quarantined or result.unmatched or result.refused_files:
        code = EXIT_SOME_NOT_APPLIED
    else:
        code = 0
    summary = result.as_dict()
    summary.update(ok=code in (0, EXIT_SOME_NOT_APPLIED), exit_code=code, by=actor.username)
    text = result.summary() + "."
    if result.by_type:
        text += "\n" + "\n".join(
            f"  {t:<16} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()))
            for t, c in sorted(result.by_type.items())
        )
    shown = result.issues[:SHOWN_ISSUES]
    if shown:
        text += "\n" + "\n".join(f"  {i['outcome']}: {i['reason']}" for i in shown)
        if len(result.issues) > len(shown):
            text += f"\n  ... and {len(result.issues) - len(shown):,} more (use --json)"
    ctx.emit(summary, text)
    return code


def run_export(ctx: CliContext) -> int:
    from app.services.settlement.messages import write_outgoing

    a = ctx.args
    actor = ctx.actor()
    result = write_outgoing(ctx.database(), actor, fmt=a.fmt, out_dir=a.out, batch=a.batch, ids=a.ids)
    summary = {"ok": True, "format": a.fmt, "batch": a.batch, **result.as_dict()}
    text = f"Wrote {result.written:,} {a.fmt} message(s) into {len(result.files):,} file(s) in {a.out}"
    if result.already_sent:
        text += f" ({result.already_sent:,} were sent before: written again, not recorded twice)"
    ctx.emit(summary, text + ".")
    return 0
