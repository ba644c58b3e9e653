"""Market reason codes (CMIS, DDAT, LACK, MONY ...) in words, from ``services.settlement.reasons`` when it is there.

The reasons module belongs to the message-import work; until it exists a code is shown as itself, and the queue
shows whatever the instruction's own reason text says beside it.
"""

from __future__ import annotations

from collections.abc import Callable

_describe: Callable[[str], str] | None = None
_looked = False


def describe(code: str) -> str:
    """``LACK`` -> "Lack of securities ..." (the code itself when there are no words for it)."""
    global _describe, _looked
    if not _looked:
        _looked = True
        try:
            from app.services.settlement import reasons

            _describe = reasons.describe
        except (ImportError, AttributeError):
            _describe = None
    if not code:
        return ""
    if _describe is None:
        return code
    try:
        words = _describe(code)
    except Exception:  # an unknown code must not break a tooltip
        return code
    return words or code
