"""Currencies' minor units (ISO 4217 exponents): how many decimals an amount paid in a currency can have.

Amounts are computed on the money scale (4 decimals) and rounded to the currency's minor unit where they become
something to pay: a trade's gross, commission and fees (capture's enrichment), and what an outgoing MT54x may carry
(SWIFT refuses a ``:19A:`` amount with more decimals than its currency has).
"""

from __future__ import annotations

# Currencies whose minor unit is not the cent (ISO 4217 exponent); every other currency has 2.
MINOR_UNITS: dict[str, int] = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3}


def minor_units(currency: str | None) -> int:
    """The number of decimals an amount in ``currency`` can have (2 unless ISO 4217 says otherwise)."""
    return MINOR_UNITS.get(currency or "", 2)
