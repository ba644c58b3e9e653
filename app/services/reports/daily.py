"""The end-of-day operations report: KPIs, the health checklist, SLA attainment, the breached items and the charts.

``build_daily`` evaluates every SLA as at the end of the day (or now, for today) **without recording** (a report
reads history, it never writes it) and gathers the dashboard figures for that day; ``write_report`` then writes
it as an Excel workbook (openpyxl: one sheet per subject, native Excel charts) or a PDF (reportlab: tables and
reportlab.graphics charts; no Qt, so it runs headless on a server), chosen by the file's extension.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import select

from app.models import Break, Correction, SettlementInstruction, Trade, User, utcnow

from ..db import Database
from ..errors import ValidationFailed
from ..permissions import Actor, Permission, require
from ..sla.evaluate import Evaluation, evaluate_all
from ..sla.kpis import Dashboard, dashboard, fmt_pct
from ..sla.rules import DESK_ZONE

BREACHED_LIMIT = 1000  # rows of breached items in the report; the count says how many there are in all
FORMATS = (".xlsx", ".pdf")


@dataclass
class DailyReport:
    day: dt.date
    zone: str
    generated_at: dt.datetime
    generated_by: str
    evaluation: Evaluation
    dashboard: Dashboard
    breached: pd.DataFrame  # sla, item type, item id, reference, owner, due (local), overdue (h)
    breached_total: int

    @property
    def title(self) -> str:
        return f"OpsDesk end-of-day operations report – {self.day:%A %d %B %Y}"

    def kpi_rows(self) -> list[tuple[str, str]]:
        """(label, value) of the headline KPIs, in the report's order."""
        h = self.dashboard.headline()
        return [
            ("Open SLA items", f"{h['open_items']:,}"),
            ("At risk", f"{h['at_risk']:,}"),
            ("Breached", f"{h['breached']:,}"),
            ("Settled on time (window)", fmt_pct(h["settled_on_time_pct"])),
            ("Straight-through rate (window)", fmt_pct(h["stp_pct"])),
            ("Open breaks", f"{h['open_breaks']:,}"),
        ]


def build_daily(
    db: Database, actor: Actor, day: dt.date, *, zone: str | None = None, limit: int = BREACHED_LIMIT
) -> DailyReport:
    require(actor, Permission.VIEW)
    zone = zone or actor.timezone or DESK_ZONE
    try:
        tz = ZoneInfo(zone)
    except Exception:
        raise ValidationFailed(f"Unknown time zone {zone!r}.") from None
    now = utcnow()
    start = dt.datetime.combine(day, dt.time(), tz)
    end = start + dt.timedelta(days=1)
    if start > now:
        raise ValidationFailed(f"{day} has not started yet; a daily report covers today or a past day.")
    at = min(now, end)
    ev = evaluate_all(db, actor, at=at, record=False)
    dash = dashboard(db, actor, ev, day=day, zone=zone, throughput_hours=(start, end), verify_audit=True)
    breached = ev.breached()
    total = len(breached)
    breached = breached.head(limit)
    return DailyReport(
        day=day,
        zone=zone,
        generated_at=now,
        generated_by=actor.username,
        evaluation=ev,
        dashboard=dash,
        breached=_describe_items(db, breached, tz, at),
        breached_total=total,
    )


def _describe_items(db: Database, frame: pd.DataFrame, tz: ZoneInfo, at: dt.datetime) -> pd.DataFrame:
    cols = ["SLA", "Item", "Id", "Reference", "Owner", "Due", "Overdue (h)"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    refs: dict[tuple[str, int], str] = {}
    with db.read() as s:
        for item_type, model, col in (
            ("trade", Trade, Trade.trade_ref),
            ("instruction", SettlementInstruction, SettlementInstruction.instruction_ref),
            ("break", Break, Break.internal_ref),
            ("correction", Correction, Correction.kind),
        ):
            ids = frame.loc[frame["item_type"] == item_type, "item_id"].astype(int).tolist()
            for start in range(0, len(ids), 900):
                chunk = ids[start : start + 900]
                for i, ref in s.execute(select(model.id, col).where(model.id.in_(chunk))):
                    refs[(item_type, i)] = str(getattr(ref, "value", ref) or "")
        owners = [int(o) for o in frame["owner_id"].unique() if o >= 0]
        names = (
            dict(s.execute(select(User.id, User.username).where(User.id.in_(owners))).all()) if owners else {}
        )
    at_s = at.timestamp()
    return pd.DataFrame(
        {
            "SLA": frame["sla_name"].tolist(),
            "Item": frame["item_type"].tolist(),
            "Id": frame["item_id"].astype(int).tolist(),
            "Reference": [
                refs.get((t, int(i)), "") for t, i in zip(frame["item_type"], frame["item_id"], strict=True)
            ],
            "Owner": [names.get(int(o), "") if o >= 0 else "" for o in frame["owner_id"]],
            "Due": [
                dt.datetime.fromtimestamp(int(d), dt.UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M")
                for d in frame["due_s"]
            ],
            "Overdue (h)": [round((at_s - int(d)) / 3600, 1) for d in frame["due_s"]],
        },
        columns=cols,
    )


def write_report(report: DailyReport, path: str | Path, *, compress: bool = True) -> Path:
    """Write the report to ``path``; the extension (.xlsx or .pdf) decides the format."""
    out = Path(path)
    ext = out.suffix.lower()
    if ext not in FORMATS:
        raise ValidationFailed(f"The report file must end in .xlsx or .pdf (got '{out.name}').")
    if not out.parent.exists():
        raise ValidationFailed(f"The folder {out.parent} does not exist.")
    if ext == ".xlsx":
        write_xlsx(report, out)
    else:
        write_pdf(report, out, compress=compress)
    return out


# =====================================================================================================================
# Tables shared by both formats
# =====================================================================================================================


def sla_rows(report: DailyReport) -> list[list[Any]]:
    rows = []
    for t in report.dashboard.tiles:
        rows.append(
            [
                t.code,
                t.name,
                t.item_type,
                t.open,
                t.counts.get("ON_TRACK", 0),
                t.counts.get("AT_RISK", 0),
                t.counts.get("BREACHED", 0),
                fmt_pct(t.attainment_today),
                fmt_pct(t.attainment_window),
            ]
        )
    return rows


SLA_HEADER = ["Code", "SLA", "Items", "Open", "On track", "At risk", "Breached", "Today", "Window"]


def _days(frame: pd.DataFrame) -> list[str]:
    return [d.isoformat() if hasattr(d, "isoformat") else str(d) for d in frame["day"]]


def _num(x: Any, digits: int = 1) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else round(v, digits)


def _hours(report: DailyReport) -> list[str]:
    tz = ZoneInfo(report.zone)
    return [
        dt.datetime.fromtimestamp(int(h), dt.UTC).astimezone(tz).strftime("%H:00")
        for h in report.dashboard.throughput["hour"]
    ]


# =====================================================================================================================
# XLSX
# =====================================================================================================================


def write_xlsx(report: DailyReport, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, LineChart, Reference
    from openpyxl.styles import Alignment, Font, PatternFill

    bold = Font(bold=True)
    head_fill = PatternFill("solid", fgColor="DDE5EE")
    tones = {"ok": "D7EFD8", "warn": "FCE8C3", "bad": "F8D2D2", "neutral": "EEEEEE"}
    wb = Workbook()
    d = report.dashboard

    def table(ws: Any, top: int, header: list[str], rows: list[list[Any]]) -> int:
        for c, h in enumerate(header, start=1):
            cell = ws.cell(row=top, column=c, value=h)
            cell.font = bold
            cell.fill = head_fill
        for r, row in enumerate(rows, start=top + 1):
            for c, v in enumerate(row, start=1):
                ws.cell(row=r, column=c, value=v)
        return top + len(rows)

    def widths(ws: Any, values: list[int]) -> None:
        for i, w in enumerate(values):
            ws.column_dimensions[chr(ord("A") + i)].width = w

    def pct_by_day(ws: Any, title: str, columns: list[int], n: int, size: tuple[int, int]) -> None:
        """A 0-100 % line chart at H2 of the given columns of a table with dates in column A and n data rows."""
        chart = LineChart()
        chart.title = title
        for col in columns:
            chart.add_data(Reference(ws, min_col=col, min_row=1, max_row=n + 1), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=n + 1))
        chart.x_axis.number_format = "dd mmm"
        chart.y_axis.scaling.min = 0
        chart.y_axis.scaling.max = 100
        chart.height, chart.width = size
        ws.add_chart(chart, "H2")

    # Summary --------------------------------------------------------------------------------------------------------
    ws = wb.active
    ws.title = "Summary"
    ws["A1"] = report.title
    ws["A1"].font = Font(bold=True, size=14)
    ws["A2"] = (
        f"Generated {report.generated_at.astimezone(ZoneInfo(report.zone)):%Y-%m-%d %H:%M %Z} by "
        f"{report.generated_by}; times in {report.zone}; window {d.window_days} days to {d.day}."
    )
    ws["A4"] = "Key figures"
    ws["A4"].font = bold
    end = table(ws, 5, ["KPI", "Value"], [list(r) for r in report.kpi_rows()])
    ws.cell(row=end + 2, column=1, value="Health checklist").font = bold
    top = end + 3
    table(
        ws,
        top,
        ["Area", "Check", "Value", "Status", "Detail"],
        [[h.area, h.check, h.value, h.status.upper(), h.detail] for h in d.health],
    )
    for i, h in enumerate(d.health, start=top + 1):
        ws.cell(row=i, column=4).fill = PatternFill("solid", fgColor=tones.get(h.status, "EEEEEE"))
        ws.cell(row=i, column=5).alignment = Alignment(wrap_text=True, vertical="top")
    widths(ws, [34, 38, 24, 10, 90])

    # SLAs -----------------------------------------------------------------------------------------------------------
    ws = wb.create_sheet("SLAs")
    n = len(d.tiles)
    table(ws, 1, SLA_HEADER, sla_rows(report))
    widths(ws, [22, 34, 12, 8, 10, 10, 10, 10, 10])
    ws2 = ws
    # Attainment over the window per SLA as numbers for the chart (the table shows text with %).
    ws2.cell(row=1, column=11, value="Attainment %").font = bold
    for i, t in enumerate(d.tiles, start=2):
        ws2.cell(row=i, column=11, value=_num(t.attainment_window))
    if n:
        chart = BarChart()
        chart.type = "bar"
        chart.title = f"SLA attainment over {d.window_days} days (%)"
        chart.add_data(Reference(ws2, min_col=11, min_row=1, max_row=n + 1), titles_from_data=True)
        chart.set_categories(Reference(ws2, min_col=2, min_row=2, max_row=n + 1))
        chart.y_axis.scaling.min = 0
        chart.y_axis.scaling.max = 100
        chart.height, chart.width = 9, 18
        ws2.add_chart(chart, f"A{n + 4}")

    # Breached items ----------------------------------------------------------------------------------------------
    ws = wb.create_sheet("Breached items")
    b = report.breached
    ws["A1"] = f"{report.breached_total:,} breached open items" + (
        f" (the {len(b):,} most overdue listed)" if report.breached_total > len(b) else ""
    )
    ws["A1"].font = bold
    table(ws, 2, list(b.columns), b.values.tolist())
    widths(ws, [32, 12, 10, 26, 14, 18, 12])
    ws.freeze_panes = "A3"

    # Settlement and STP ----------------------------------------------------------------------------------------------
    ws = wb.create_sheet("Settlement & STP")
    s_ = d.settlement
    stp = d.stp.set_index("day")
    days = sorted(set(s_["day"]).union(stp.index))
    settle = s_.set_index("day")
    rows = []
    for day in days:
        rows.append(
            [
                day,
                int(settle["due"].get(day, 0)) if day in settle.index else None,
                int(settle["failed"].get(day, 0)) if day in settle.index else None,
                _num(settle["fail_rate"].get(day)) if day in settle.index else None,
                int(stp["trades"].get(day, 0)) if day in stp.index else None,
                _num(stp["stp_rate"].get(day)) if day in stp.index else None,
            ]
        )
    table(ws, 1, ["Day", "Due to settle", "Failed", "Fail rate %", "Trades", "STP %"], rows)
    for r in range(2, len(rows) + 2):
        ws.cell(row=r, column=1).number_format = "yyyy-mm-dd"
    widths(ws, [12, 14, 10, 12, 10, 10])
    if rows:
        pct_by_day(ws, "Settlement fail rate and STP rate by day (%)", [4, 6], len(rows), (9, 18))

    # Break ageing ---------------------------------------------------------------------------------------------------
    ws = wb.create_sheet("Break ageing")
    table(ws, 1, ["Age (business days)", "Open breaks"], [[label, n_] for label, n_, _ in d.ageing])
    widths(ws, [22, 14])
    chart = BarChart()
    chart.title = "Open breaks by age"
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=len(d.ageing) + 1), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=len(d.ageing) + 1))
    chart.height, chart.width = 8, 14
    ws.add_chart(chart, "D2")

    # Throughput -----------------------------------------------------------------------------------------------------
    ws = wb.create_sheet("Throughput")
    tp = d.throughput
    hours = _hours(report)
    table(
        ws,
        1,
        ["Hour", "Trades captured", "Instructions sent", "Breaks resolved"],
        [
            [h, int(a), int(b_), int(c)]
            for h, a, b_, c in zip(hours, tp["trades"], tp["instructions"], tp["breaks"], strict=True)
        ],
    )
    widths(ws, [10, 16, 18, 16])
    chart = BarChart()
    chart.title = f"Throughput per hour ({report.zone})"
    chart.add_data(Reference(ws, min_col=2, max_col=4, min_row=1, max_row=len(tp) + 1), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=len(tp) + 1))
    chart.height, chart.width = 9, 20
    ws.add_chart(chart, "F2")

    # Affirmation ----------------------------------------------------------------------------------------------------
    ws = wb.create_sheet("Affirmation")
    af = d.affirmation
    table(
        ws,
        1,
        ["Trade date", "Trades", "By 21:00 ET", "Late", "Not affirmed", "Rate %"],
        [
            [day, int(t), int(o), int(la), int(m), _num(r)]
            for day, t, o, la, m, r in zip(
                af["day"], af["trades"], af["on_time"], af["late"], af["missing"], af["rate"], strict=True
            )
        ],
    )
    for r in range(2, len(af) + 2):
        ws.cell(row=r, column=1).number_format = "yyyy-mm-dd"
    widths(ws, [12, 10, 12, 8, 14, 10])
    if len(af):
        pct_by_day(ws, "Affirmation rate vs the 21:00 ET cut-off (%)", [6], len(af), (8, 16))

    # Workload -------------------------------------------------------------------------------------------------------
    if d.workload is not None:
        ws = wb.create_sheet("Workload")
        w = d.workload
        table(
            ws,
            1,
            ["Owner", "Open", "On track", "At risk", "Breached"],
            [
                [u, int(o), int(a), int(b_), int(c)]
                for u, o, a, b_, c in zip(
                    w["username"], w["open"], w["ON_TRACK"], w["AT_RISK"], w["BREACHED"], strict=True
                )
            ],
        )
        widths(ws, [18, 10, 10, 10, 10])
    wb.save(path)


# =====================================================================================================================
# PDF
# =====================================================================================================================


def write_pdf(report: DailyReport, path: Path, *, compress: bool = True) -> None:
    from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    d = report.dashboard
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    tones = {
        "ok": colors.HexColor("#d7efd8"),
        "warn": colors.HexColor("#fce8c3"),
        "bad": colors.HexColor("#f8d2d2"),
        "neutral": colors.HexColor("#eeeeee"),
    }
    accent = colors.HexColor("#1f5fbf")
    series_colors = [colors.HexColor("#c62828"), colors.HexColor("#2e7d32"), colors.HexColor("#b26a00")]
    width = A4[0] - 30 * mm

    def grid(data: list[list[Any]], col_widths: list[float] | None = None, font: int = 8) -> Table:
        t = Table(data, colWidths=col_widths, repeatRows=1)
        t.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), "Helvetica", font),
                    ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", font),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde5ee")),
                    ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#c4cbd3")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    def day_plot(title: str, frames: list[tuple[str, list[dt.date], list[float | None]]]) -> Drawing:
        dr = Drawing(width, 62 * mm)
        dr.add(String(0, 58 * mm, title, fontName="Helvetica-Bold", fontSize=9))
        lp = LinePlot()
        lp.x, lp.y, lp.width, lp.height = 12 * mm, 10 * mm, width - 60 * mm, 42 * mm
        data = []
        for _, days, values in frames:
            pts = [(d_.toordinal(), v) for d_, v in zip(days, values, strict=True) if v is not None]
            data.append(pts or [(report.day.toordinal(), 0)])
        lp.data = data
        xs = [p[0] for series in data for p in series]
        lp.xValueAxis.valueMin = min(xs) - 0.5
        lp.xValueAxis.valueMax = max(xs) + 0.5
        lp.xValueAxis.labelTextFormat = lambda v: dt.date.fromordinal(int(round(v))).strftime("%d %b")
        lp.xValueAxis.valueSteps = sorted(set(xs))
        lp.xValueAxis.labels.fontSize = 6
        lp.xValueAxis.labels.angle = 45
        lp.xValueAxis.labels.boxAnchor = "ne"
        lp.yValueAxis.valueMin, lp.yValueAxis.valueMax, lp.yValueAxis.valueStep = 0, 100, 20
        lp.yValueAxis.labels.fontSize = 7
        for i in range(len(data)):
            lp.lines[i].strokeColor = series_colors[i % 3]
            lp.lines[i].strokeWidth = 1.5
        dr.add(lp)
        legend = Legend()
        legend.x, legend.y = width - 44 * mm, 45 * mm
        legend.fontSize = 7
        legend.colorNamePairs = [(series_colors[i % 3], name) for i, (name, _, _) in enumerate(frames)]
        dr.add(legend)
        return dr

    def bars(
        title: str, labels: list[str], series: list[tuple[str, list[int | float]]], horizontal: bool = False
    ) -> Drawing:
        height = (12 + 7 * len(labels)) * mm if horizontal else 62 * mm
        dr = Drawing(width, height)
        dr.add(String(0, height - 4 * mm, title, fontName="Helvetica-Bold", fontSize=9))
        bc = HorizontalBarChart() if horizontal else VerticalBarChart()
        left = 55 * mm if horizontal else 12 * mm
        bc.x, bc.y, bc.width, bc.height = left, 8 * mm, width - left - 45 * mm, height - 16 * mm
        bc.data = [list(v) if v else [0] for _, v in series]
        bc.categoryAxis.categoryNames = labels
        bc.categoryAxis.labels.fontSize = 6 if not horizontal else 7
        bc.valueAxis.labels.fontSize = 7
        bc.valueAxis.valueMin = 0
        top = max([max(v) if v else 0 for _, v in series] + [1])
        if horizontal:
            bc.valueAxis.valueMax = 100
            bc.valueAxis.valueStep = 20
        else:
            bc.valueAxis.valueMax = top * 1.15
        for i in range(len(series)):
            bc.bars[i].fillColor = [accent, series_colors[1], series_colors[2]][i % 3]
            bc.bars[i].strokeColor = None
        dr.add(bc)
        if len(series) > 1:
            legend = Legend()
            legend.x, legend.y = width - 40 * mm, height - 12 * mm
            legend.fontSize = 7
            legend.colorNamePairs = [
                ([accent, series_colors[1], series_colors[2]][i % 3], n) for i, (n, _) in enumerate(series)
            ]
            dr.add(legend)
        return dr

    story: list[Any] = [
        Paragraph(report.title, styles["Title"]),
        Paragraph(
            f"Generated {report.generated_at.astimezone(ZoneInfo(report.zone)):%Y-%m-%d %H:%M %Z} by "
            f"{report.generated_by}. Times in {report.zone}. Window: {d.window_days} days to {d.day}.",
            small,
        ),
        Spacer(1, 4 * mm),
        Paragraph("Key figures", styles["Heading2"]),
        grid([["KPI", "Value"], *[list(r) for r in report.kpi_rows()]], [80 * mm, 40 * mm], font=9),
        Spacer(1, 4 * mm),
        Paragraph("Health checklist", styles["Heading2"]),
    ]
    health = grid(
        [["Area", "Check", "Value", "Status", "Detail"]]
        + [
            [h.area, Paragraph(h.check, small), h.value, h.status.upper(), Paragraph(h.detail, small)]
            for h in d.health
        ],
        [22 * mm, 38 * mm, 30 * mm, 16 * mm, width - 106 * mm],
    )
    health.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (3, i), (3, i), tones.get(h.status, tones["neutral"]))
                for i, h in enumerate(d.health, start=1)
            ]
        )
    )
    story += [health, Spacer(1, 4 * mm), Paragraph("SLAs", styles["Heading2"])]
    story.append(
        grid(
            [["Code", "SLA", "Open", "On track", "At risk", "Breached", "Today", "Window"]]
            + [[r[0], Paragraph(r[1], small), *r[3:]] for r in sla_rows(report)],
            [38 * mm, 44 * mm, 14 * mm, 16 * mm, 14 * mm, 16 * mm, 16 * mm, 16 * mm],
        )
    )
    story += [PageBreak(), Paragraph("Charts", styles["Heading2"])]
    tiles = [t for t in d.tiles if t.attainment_window is not None]
    if tiles:
        story.append(
            bars(
                f"SLA attainment over {d.window_days} days (%)",
                [t.name for t in tiles],
                [("Attainment", [t.attainment_window or 0 for t in tiles])],
                horizontal=True,
            )
        )
    settle, stp = d.settlement, d.stp
    story.append(
        day_plot(
            "Settlement fail rate and STP rate by day (%)",
            [
                ("Fail rate", list(settle["day"]), [_num(v) for v in settle["fail_rate"]]),
                ("STP rate", list(stp["day"]), [_num(v) for v in stp["stp_rate"]]),
            ],
        )
    )
    af = d.affirmation
    story.append(
        day_plot(
            "Affirmation rate vs the 21:00 ET cut-off (%)",
            [("Affirmed by 21:00 ET", list(af["day"]), [_num(v) for v in af["rate"]])],
        )
    )
    story.append(
        bars(
            "Open breaks by age (business days)",
            [a for a, _, _ in d.ageing],
            [("Breaks", [n for _, n, _ in d.ageing])],
        )
    )
    tp = d.throughput
    story.append(
        bars(
            f"Throughput per hour ({report.zone})",
            [h[:2] for h in _hours(report)],
            [
                ("Trades captured", [int(x) for x in tp["trades"]]),
                ("Instructions sent", [int(x) for x in tp["instructions"]]),
                ("Breaks resolved", [int(x) for x in tp["breaks"]]),
            ],
        )
    )
    if d.workload is not None and len(d.workload):
        w = d.workload
        story += [
            Paragraph("Workload by owner", styles["Heading2"]),
            grid(
                [["Owner", "Open", "On track", "At risk", "Breached"]]
                + [
                    [u, f"{o:,}", f"{a:,}", f"{b_:,}", f"{c:,}"]
                    for u, o, a, b_, c in zip(
                        w["username"], w["open"], w["ON_TRACK"], w["AT_RISK"], w["BREACHED"], strict=True
                    )
                ],
                [40 * mm, 20 * mm, 20 * mm, 20 * mm, 20 * mm],
            ),
        ]
    story += [PageBreak(), Paragraph("Breached items", styles["Heading2"])]
    b = report.breached
    note = f"{report.breached_total:,} breached open items"
    if report.breached_total > len(b):
        note += f"; the {len(b):,} most overdue are listed (the XLSX report lists the same)"
    story.append(Paragraph(note + ".", small))
    if len(b):
        story.append(
            grid(
                [list(b.columns)]
                + [[Paragraph(str(r[0]), small), *[str(x) for x in r[1:]]] for r in b.values.tolist()],
                [44 * mm, 18 * mm, 14 * mm, 34 * mm, 18 * mm, 26 * mm, 18 * mm],
                font=7,
            )
        )

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(15 * mm, 8 * mm, f"OpsDesk daily report {report.day} – page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=report.title,
        author="OpsDesk",
        pageCompression=1 if compress else 0,
        invariant=1,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
