"""A large file's batch audit entry lists every transition as a JSON row; the rows are assembled from their parts'
texts (``lifecycle.audit_row``) and must be exactly what the generic encoder gives of the same row, whatever the
values: decimals of every shape (zero, negative zero, exponents, trailing zeros), missing reasons, text with quotes,
backslashes, control and non-ASCII characters, settlement details, and values of unusual types."""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from app.models.enums import InstructionStatus
from app.services.settlement import lifecycle

S = InstructionStatus
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _generic(step: Any) -> str:
    """The row as the batch entry encoded it before: one list through the JSON encoder."""
    return _dumps(
        [
            step.state.id,
            step.state.instruction_ref,
            step.old.value,
            step.new.value,
            lifecycle._compact(step.before),
            lifecycle._compact(step.after),
            step.note,
            lifecycle._jsonable_details(step.details) if step.details else None,
        ]
    )


DECIMALS = [Decimal(0), Decimal("-0"), Decimal("0.000000"), Decimal("100"), Decimal("100.000000"), Decimal("1E+3"),
            Decimal("-24150.5000"), Decimal("0.0001"), Decimal("123456789012.123456")]  # fmt: skip
TEXTS = [None, "", "CMIS", 'say "hi"', "back\\slash", "tab\tnew\nline", "Zürich — ü€", "\x01ctl", "😀"]
DETAILS = [None, {}, {"settlement": {"quantity": "100", "amount": "24150.5", "settled_on": "2024-01-15"}},
           {"odd": Decimal("1.50"), "when": None}]  # fmt: skip


def test_audit_rows_are_exactly_what_the_encoder_gives() -> None:
    statuses = list(S)
    cases = 0
    for n, (q, text, details) in enumerate(itertools.product(DECIMALS, TEXTS, DETAILS)):
        old, new = statuses[n % len(statuses)], statuses[(n * 7 + 3) % len(statuses)]
        before = (old, text, text, q, Decimal(0), n)
        after = (new, None if n % 2 else "LACK", text, -q, q * 3, n + 1)
        step = lifecycle._Step(
            SimpleNamespace(id=n + 1, instruction_ref=f"REF{n}" + (text or "")),  # type: ignore[arg-type]
            old, new, before, after, text or "", details, sync=True,
        )  # fmt: skip
        assert lifecycle.audit_row(step) == _generic(step), (q, text, details)
        assert json.loads(lifecycle.audit_row(step))[4][3] == lifecycle._compact(before)[3]
        cases += 1
    assert cases == len(DECIMALS) * len(TEXTS) * len(DETAILS)


def test_unusual_values_in_an_image_take_the_generic_way() -> None:
    import datetime as dt

    for odd in (True, 1.5, dt.date(2024, 1, 15), "MATCHED"):
        before = (S.MATCHED, None, None, Decimal(1), Decimal(2), odd)
        step = lifecycle._Step(
            SimpleNamespace(id=7, instruction_ref="X"),  # type: ignore[arg-type]
            S.MATCHED, S.SETTLED, before, before, "n", None, sync=False,
        )  # fmt: skip
        assert lifecycle.audit_row(step) == _generic(step)
