"""Trade capture from the front office: CSV/XLSX files with column-mapping profiles and FIX drop-copy logs.

The pipeline (importer.py) reads a file (readers.py, fix.py), converts its values exactly (convert.py, units.py),
decides what each line does (plan.py), validates (validation.py) and enriches (enrichment.py) whole columns against
reference data (refdata.py), and writes in bulk (bulk.py) in one unit of work. repair.py fixes trades in the repair
queue; detail.py describes a trade for the blotter's detail panel; export.py writes the blotter to CSV or XLSX.

The names below are imported on first use (PEP 562): the pipeline needs pandas, numpy and pyarrow (about two
seconds to import), and a module that needs one light part of the package (``bulk``, ``detail``,
``reason_codes``) must not pay for the rest.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .detail import EDITABLE, ExceptionInfo, TradeDetail, trade_detail
    from .export import ExportCancelled, ExportResult, export_blotter
    from .importer import ImportCancelled, ImportReport, LineIssue, import_trades
    from .profiles import BUILTIN as PROFILES
    from .profiles import Profile, known_profiles, load_profile
    from .repair import RepairResult, repair_trade

# name -> (module, attribute)
_LAZY: dict[str, tuple[str, str]] = {
    "EDITABLE": ("detail", "EDITABLE"),
    "ExceptionInfo": ("detail", "ExceptionInfo"),
    "TradeDetail": ("detail", "TradeDetail"),
    "trade_detail": ("detail", "trade_detail"),
    "ExportCancelled": ("export", "ExportCancelled"),
    "ExportResult": ("export", "ExportResult"),
    "export_blotter": ("export", "export_blotter"),
    "ImportCancelled": ("importer", "ImportCancelled"),
    "ImportReport": ("importer", "ImportReport"),
    "LineIssue": ("importer", "LineIssue"),
    "import_trades": ("importer", "import_trades"),
    "PROFILES": ("profiles", "BUILTIN"),
    "Profile": ("profiles", "Profile"),
    "known_profiles": ("profiles", "known_profiles"),
    "load_profile": ("profiles", "load_profile"),
    "RepairResult": ("repair", "RepairResult"),
    "repair_trade": ("repair", "repair_trade"),
}

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


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value  # once
    return value
