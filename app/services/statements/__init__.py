"""Statements in: cash statements (MT940/MT942/MT950, camt.052/053/054), holdings statements (MT535, semt.002) and
counterparty confirmations / custodian positions (CSV, XLSX with a mapping profile), imported into ``statements`` and
``statement_lines`` for the reconciliation engine.

Readers only read (parsed.py describes what they return); importer.py checks balances and sequences, recognises
duplicates and writes, one transaction per file.
"""

from __future__ import annotations

from .importer import (
    FORMATS,
    FileOutcome,
    StatementImportResult,
    StatementOutcome,
    detect_format,
    import_statements,
    list_statements,
    read_statements,
)
from .parsed import ParsedLine, ParsedStatement, StatementFileRefused

__all__ = [
    "FORMATS",
    "FileOutcome",
    "ParsedLine",
    "ParsedStatement",
    "StatementFileRefused",
    "StatementImportResult",
    "StatementOutcome",
    "detect_format",
    "import_statements",
    "list_statements",
    "read_statements",
]
