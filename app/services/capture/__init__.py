"""Trade capture from the front office: CSV/XLSX files with column-mapping profiles and FIX drop-copy logs.

The pipeline (importer.py) reads a file (readers.py, fix.py), converts its values exactly (convert.py, units.py),
decides what each line does (plan.py), validates (validation.py) and enriches (enrichment.py) whole columns against
reference data (refdata.py), and writes in bulk (bulk.py) in one unit of work. repair.py fixes trades in the repair
queue and describes a trade for the blotter's detail panel; export.py writes the blotter to CSV or XLSX.
"""

from __future__ import annotations

from .export import ExportCancelled, ExportResult, export_blotter
from .importer import ImportCancelled, ImportReport, LineIssue, import_trades
from .profiles import BUILTIN as PROFILES
from .profiles import Profile, known_profiles, load_profile
from .repair import EDITABLE, ExceptionInfo, RepairResult, TradeDetail, repair_trade, trade_detail

__all__ = [
    "EDITABLE",
    "PROFILES",
    "ExceptionInfo",
    "ExportCancelled",
    "ExportResult",
    "ImportCancelled",
    "ImportReport",
    "LineIssue",
    "Profile",
    "RepairResult",
    "TradeDetail",
    "export_blotter",
    "import_trades",
    "known_profiles",
    "load_profile",
    "repair_trade",
    "trade_detail",
]
