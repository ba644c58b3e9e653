"""The matcher on hand-made frames: each pass, each tolerance kind, duplicate keys, aggregation both ways, no false
breaks, exact decimals (0.1 + 0.2 is 0.3), deterministic output, and config errors that name the field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.services.errors import ValidationFailed
from app.services.recon.config import ConfigError, parse_config, parse_tolerance
from app.services.recon.engine import describe, describe_chunks, reconcile

MONEY = 10_000  # money is held in units of 1e-4
QTY = 1_000_000  # quantities in units of 1e-6


def money(text: str | None) -> int | None:
    return None if text is None else int(Decimal(text) * MONEY)


def config(**over: Any) -> Any:
    raw: dict[str, Any] = {
        "left": {"source": "ours"},
        "right": {"source": "theirs"},
        "fields": {
            "ref": {},
            "isin": {"code": "DSEC", "category": "SECURITY"},
            "quantity": {"type": "quantity", "code": "DQUA", "category": "QUANTITY"},
            "amount": {"type": "money", "tolerance": "abs=0.01", "code": "DMON", "category": "AMOUNT"},
            "settle": {"type": "date", "tolerance": "days=1", "code": "DDAT", "category": "SETTLEMENT_DATE"},
        },
        "key": ["ref"],
        "compare": ["isin", "quantity", "amount", "settle"],
        "passes": [
            {"name": "exact_ref", "kind": "pair", "keys": ["ref"], "duplicates": "report"},
            {
                "name": "composite",
                "kind": "pair",
                "keys": ["isin", "quantity"],
                "require": ["amount", "settle"],
            },
        ],
        "stake": {"amount": "amount"},
    }
    raw.update(over)
    return parse_config(raw)


def frame(rows: list[tuple[Any, ...]], prefix: str) -> pd.DataFrame:
    """rows of (ref, isin, quantity, amount text, settle 'YYYY-MM-DD')."""
    return pd.DataFrame(
        {
            "_id": [f"{prefix}{i}" for i in range(len(rows))],
            "ref": [r[0] for r in rows],
            "isin": [r[1] for r in rows],
            "quantity": pd.array([None if r[2] is None else r[2] * QTY for r in rows], dtype="Int64"),
            "amount": pd.array([money(r[3]) for r in rows], dtype="Int64"),
            "settle": pd.to_datetime([r[4] for r in rows]),
        }
    )


def kinds(result: Any) -> dict[str, int]:
    return {k: v for k, v in result.breaks_by_type().items() if v}


def test_exact_reference_pass_matches_and_reports_differing_fields_with_both_values() -> None:
    left = frame(
        [
            ("T1", "US0378331005", 100, "1000.00", "2026-11-20"),
            ("T2", "US0378331005", 200, "2000.00", "2026-11-20"),
        ],
        "L",
    )
    right = frame(
        [
            ("T1", "US0378331005", 100, "1000.00", "2026-11-20"),
            ("T2", "US5949181045", 210, "2000.00", "2026-11-20"),
        ],
        "R",
    )
    result = reconcile(left, right, config())
    assert result.matched_by_pass()["exact_ref"] == 1
    (b,) = describe(result)
    assert b["break_type"] == "FIELD_MISMATCH" and b["pass"] == "exact_ref"
    assert (b["internal_ref"], b["external_ref"]) == ("L1", "R1")
    assert b["differences"] == [
        {"field": "isin", "internal": "US0378331005", "external": "US5949181045"},
        {"field": "quantity", "internal": "200", "external": "210"},
    ]
    assert b["root_cause"] == "DSEC" and b["category"] == "SECURITY"


def test_composite_pass_pairs_records_without_reference_only_within_tolerance() -> None:
    left = frame(
        [
            ("T1", "DE0007164600", 50, "12075.00", "2026-11-20"),
            ("T2", "DE0007236101", 70, "14371.00", "2026-11-20"),
        ],
        "L",
    )
    # No references; amounts within a cent and a settlement date one day off (window 1) -> composite match;
    # the second is 5 cents off: not paired by the composite pass, so both sides stay unmatched.
    right = frame(
        [
            (None, "DE0007164600", 50, "12075.01", "2026-11-21"),
            (None, "DE0007236101", 70, "14371.05", "2026-11-20"),
        ],
        "R",
    )
    result = reconcile(left, right, config())
    assert result.matched_by_pass() == {"exact_ref": 0, "composite": 1}
    assert kinds(result) == {"MISSING_EXTERNAL": 1, "MISSING_INTERNAL": 1}
    assert result.left.ids[result.missing_left].tolist() == ["L1"]


@pytest.mark.parametrize(
    ("tolerance", "left", "right", "agree"),
    [
        ("abs=0.01", "100.00", "100.01", True),
        ("abs=0.01", "100.00", "100.02", False),
        ("abs=0", "100.00", "100.0001", False),
        ("rel=0.001", "1000.00", "1001.00", True),  # 1 / 1001 < 0.1 %
        ("rel=0.001", "1000.00", "1001.10", False),
        ("rel=0.5", "-10.00", "10.00", False),  # sign matters
    ],
)
def test_numeric_tolerances_at_their_boundaries(tolerance: str, left: str, right: str, agree: bool) -> None:
    cfg = parse_config(
        {
            "left": {"source": "a"},
            "right": {"source": "b"},
            "fields": {"ref": {}, "amount": {"type": "money", "tolerance": tolerance}},
            "compare": ["amount"],
            "passes": [{"name": "p", "keys": ["ref"]}],
        }
    )
    lf = pd.DataFrame({"_id": ["l"], "ref": ["X"], "amount": pd.array([money(left)], dtype="Int64")})
    rf = pd.DataFrame({"_id": ["r"], "ref": ["X"], "amount": pd.array([money(right)], dtype="Int64")})
    result = reconcile(lf, rf, cfg)
    assert (result.matched_groups == 1) is agree
    assert (len(result.mismatch_left) == 1) is (not agree)


@pytest.mark.parametrize(
    ("days", "other", "agree"),
    [
        (0, "2026-11-20", True),
        (0, "2026-11-21", False),
        (2, "2026-11-22", True),
        (2, "2026-11-18", True),
        (2, "2026-11-23", False),
    ],
)
def test_date_window_tolerance(days: int, other: str, agree: bool) -> None:
    cfg = parse_config(
        {
            "left": {"source": "a"},
            "right": {"source": "b"},
            "fields": {"ref": {}, "d": {"type": "date", "tolerance": f"days={days}"}},
            "compare": ["d"],
            "passes": [{"name": "p", "keys": ["ref"]}],
        }
    )
    lf = pd.DataFrame({"_id": ["l"], "ref": ["X"], "d": pd.to_datetime(["2026-11-20"])})
    rf = pd.DataFrame({"_id": ["r"], "ref": ["X"], "d": pd.to_datetime([other])})
    assert (reconcile(lf, rf, cfg).matched_groups == 1) is agree


def test_text_is_exact_and_a_missing_value_differs_from_a_present_one() -> None:
    left = frame(
        [
            ("T1", "US0378331005", 1, "1.00", "2026-11-20"),
            ("T2", None, 1, "1.00", "2026-11-20"),
            ("T3", None, 1, None, "2026-11-20"),
        ],
        "L",
    )
    right = frame(
        [
            ("T1", "us0378331005", 1, "1.00", "2026-11-20"),
            ("T2", "US0378331005", 1, "1.00", "2026-11-20"),
            ("T3", None, 1, None, "2026-11-20"),
        ],
        "R",
    )
    result = reconcile(left, right, config())
    assert result.matched_groups == 1  # T3: both missing agree
    assert sorted(result.left.ids[result.mismatch_left].tolist()) == ["L0", "L1"]


@pytest.mark.parametrize("side", ["left", "right"])
def test_duplicate_keys_on_either_side_are_reported_once_and_never_paired(side: str) -> None:
    one = [
        ("T1", "US0378331005", 100, "1000.00", "2026-11-20"),
        ("T2", "US0378331005", 5, "50.00", "2026-11-20"),
    ]
    two = one + [("T1", "US0378331005", 100, "1000.00", "2026-11-20")]
    left, right = (frame(two, "L"), frame(one, "R")) if side == "left" else (frame(one, "L"), frame(two, "R"))
    result = reconcile(left, right, config())
    assert kinds(result) == {"DUPLICATE_KEY": 1}
    (dup,) = [b for b in describe(result) if b["break_type"] == "DUPLICATE_KEY"]
    assert dup["differences"][0]["key"] == {"ref": "T1"}
    counts = (dup["differences"][0]["internal"], dup["differences"][0]["external"])
    assert counts == ((2, 1) if side == "left" else (1, 2))
    # Neither record with key T1 was matched by row order, not even by the composite pass that follows.
    assert result.matched_groups == 1
    assert set(result.left.ids[result.pair_left]) == {"L1"}


def test_one_to_many_partial_fills_against_a_block_confirmation() -> None:
    cfg = config(
        passes=[
            {"name": "exact_ref", "kind": "pair", "keys": ["ref"], "duplicates": "report"},
            {
                "name": "fills",
                "kind": "aggregate",
                "many": "left",
                "keys": ["isin", "settle"],
                "sum": ["quantity", "amount"],
            },
        ]
    )
    left = frame(
        [
            ("F1", "FR0000120271", 300, "16590.00", "2026-11-20"),
            ("F2", "FR0000120271", 200, "11062.00", "2026-11-20"),
            ("F3", "FR0000120271", 500, "27650.00", "2026-11-20"),
            ("G1", "NL0010273215", 10, "6554.00", "2026-11-20"),
            ("G2", "NL0010273215", 10, "6554.00", "2026-11-20"),
        ],
        "L",
    )
    right = frame(
        [
            ("BLOCK1", "FR0000120271", 1000, "55302.00", "2026-11-20"),
            ("BLOCK2", "NL0010273215", 25, "16385.00", "2026-11-20"),
        ],
        "R",
    )
    result = reconcile(left, right, cfg)
    assert [
        (name, sorted(result.left.ids[lp]), result.right.ids[rp].tolist()) for name, lp, rp in result.groups
    ] == [("fills", ["L0", "L1", "L2"], ["R0"])]
    # The second block is 5 short: not matched, every record stays a break.
    assert kinds(result) == {"MISSING_EXTERNAL": 2, "MISSING_INTERNAL": 1}


def test_many_to_one_several_bank_lines_against_one_settlement() -> None:
    cfg = config(
        passes=[
            {"name": "exact_ref", "kind": "pair", "keys": ["ref"], "duplicates": "report"},
            {"name": "split", "kind": "aggregate", "many": "right", "keys": ["ref"], "sum": ["amount"]},
        ],
        compare=["amount"],
    )
    left = frame(
        [("SEME1", "X", 1, "-1000000.00", "2026-11-20"), ("SEME2", "X", 1, "500.00", "2026-11-20")], "L"
    )
    # The bank booked SEME1 in three lines quoting the same reference: held as duplicates by the reference pass,
    # accounted for by the aggregation. SEME2 twice with a wrong total stays a duplicate-key break.
    right = frame(
        [
            ("SEME1", "X", 1, "-400000.00", "2026-11-20"),
            ("SEME1", "X", 1, "-350000.00", "2026-11-20"),
            ("SEME1", "X", 1, "-250000.00", "2026-11-20"),
            ("SEME2", "X", 1, "300.00", "2026-11-20"),
            ("SEME2", "X", 1, "300.00", "2026-11-20"),
        ],
        "R",
    )
    result = reconcile(left, right, cfg)
    assert [
        (n, result.left.ids[lp].tolist(), sorted(result.right.ids[rp])) for n, lp, rp in result.groups
    ] == [("split", ["L0"], ["R0", "R1", "R2"])]
    assert kinds(result) == {"DUPLICATE_KEY": 1}
    assert describe(result)[0]["internal_record"]["key"] == {"ref": "SEME2"}


def test_no_false_breaks_on_identical_random_books() -> None:
    rng = np.random.default_rng(7)
    n = 5_000
    rows = [
        (
            f"T{i:06d}",
            f"ISIN{int(rng.integers(50)):08d}",
            int(rng.integers(1, 10_000)),
            f"{int(rng.integers(1, 10**9))}.{int(rng.integers(100)):02d}",
            f"2026-11-{int(rng.integers(1, 28)):02d}",
        )
        for i in range(n)
    ]
    left = frame(rows, "L")
    right = frame(rows[::-1], "R")  # a different order changes nothing
    result = reconcile(left, right, config())
    assert result.matched_groups == n
    assert kinds(result) == {} and describe(result) == []


def test_decimal_amounts_are_exact_point_one_plus_point_two_is_point_three() -> None:
    assert 0.1 + 0.2 != 0.3  # what a float-based matcher would trip over
    cfg = config(
        fields={
            "ref": {},
            "isin": {},
            "quantity": {"type": "quantity"},
            "amount": {"type": "money"},
            "settle": {"type": "date"},
        },
        passes=[{"name": "agg", "kind": "aggregate", "many": "left", "keys": ["isin"], "sum": ["amount"]}],
        compare=["amount"],
    )
    left = frame(
        [
            ("A", "X", 1, "0.1", "2026-11-20"),
            ("B", "X", 1, "0.2", "2026-11-20"),
            ("C", "Y", 1, "1234567890123.1", "2026-11-20"),
            ("D", "Y", 1, "0.2", "2026-11-20"),
        ],
        "L",
    )
    right = frame([("Z", "X", 1, "0.3", "2026-11-20"), ("W", "Y", 1, "1234567890123.3", "2026-11-20")], "R")
    result = reconcile(left, right, cfg)
    assert len(result.groups) == 2 and kinds(result) == {}
    with pytest.raises(TypeError, match="floats"):
        reconcile(left.assign(amount=left["amount"].astype(float)), right, cfg)


def test_amount_at_stake_and_currency_of_a_mismatch() -> None:
    left = frame([("T1", "X", 100, "1000.00", "2026-11-20")], "L")
    right = frame([("T1", "X", 100, "1025.00", "2026-11-20")], "R")
    (b,) = describe(reconcile(left, right, config()))
    assert b["amount"] == Decimal("25.0000") and b["root_cause"] == "DMON"


def test_output_is_deterministic_whatever_the_row_order() -> None:
    rows_l = [(f"T{i}", "X", i + 1, f"{i}.00", "2026-11-20") for i in range(40)]
    rows_r = [(f"T{i}", "X", i + (2 if i % 7 == 0 else 1), f"{i}.00", "2026-11-20") for i in range(3, 45)]
    a = describe(reconcile(frame(rows_l, "L"), frame(rows_r, "R"), config()))
    left2, right2 = frame(rows_l, "L").iloc[::-1], frame(rows_r, "R").sample(frac=1, random_state=3)
    b = describe(reconcile(left2, right2, config()))
    assert a == b and len(a) > 10


def test_breaks_come_in_chunks_in_the_order_of_the_whole_list() -> None:
    """describe_chunks (what a run stores chunk by chunk) hands out every break describe() gives, in its order,
    no chunk larger than asked: sorted by type, then the internal and external identities."""
    rows_l = [(f"T{i}", "X", i + 1, f"{i}.00", "2026-11-20") for i in range(40)]
    rows_l += [("T5", "X", 6, "5.00", "2026-11-20")]  # a duplicate key
    rows_r = [(f"T{i}", "X", i + (2 if i % 7 == 0 else 1), f"{i}.00", "2026-11-20") for i in range(3, 45)]
    result = reconcile(
        frame(rows_l, "L").iloc[::-1], frame(rows_r, "R").sample(frac=1, random_state=5), config()
    )
    whole = describe(result)
    assert {b["break_type"] for b in whole} == {
        "DUPLICATE_KEY",
        "FIELD_MISMATCH",
        "MISSING_EXTERNAL",
        "MISSING_INTERNAL",
    }
    for size in (1, 4, 1000):
        chunks = list(describe_chunks(result, size))
        assert all(0 < len(c) <= size for c in chunks)
        assert [b for c in chunks for b in c] == whole
    assert whole == sorted(
        whole, key=lambda b: (b["break_type"], str(b["internal_ref"]), str(b["external_ref"]), b["key"])
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"compare": ["isin", "qty"]}, "compare[1]: unknown field 'qty'"),
        ({"passes": [{"name": "p", "keys": ["ref"], "duplicates": "maybe"}]}, "passes[0].duplicates"),
        (
            {"passes": [{"name": "a", "kind": "aggregate", "keys": ["isin"], "sum": ["isin"]}]},
            "passes[0].sum[0]",
        ),
        ({"passes": []}, "passes: list at least one pass"),
        (
            {"fields": {"ref": {}, "amount": {"type": "money", "tolerance": "abs=x"}}},
            "fields.amount.tolerance",
        ),
        ({"fields": {"ref": {}, "d": {"type": "text", "tolerance": "days=1"}}}, "fields.d.tolerance"),
        ({"fields": {"ref": {"type": "decimal"}}}, "fields.ref.type"),
        ({"stake": {"amount": "nope"}}, "stake.amount"),
        ({"colour": "blue"}, "unknown setting 'colour'"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    raw = {
        "left": {"source": "a"},
        "right": {"source": "b"},
        "fields": {"ref": {}, "isin": {}, "amount": {"type": "money"}},
        "compare": ["isin"],
        "passes": [{"name": "p", "keys": ["ref"]}],
    }
    raw.update(change)
    with pytest.raises(
        ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
    ):
        parse_config(raw)


def test_tolerance_syntax() -> None:
    assert parse_tolerance("abs=0.01").text == "abs=0.01"
    assert parse_tolerance("REL = 0.001").kind == "rel"
    assert parse_tolerance({"days": 2}).value == 2
    for bad in ("abs", "abs=-1", "days=1.5", "rel=2", "pct=1"):
        with pytest.raises(ValidationFailed):
            parse_tolerance(bad)
