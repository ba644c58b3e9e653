"""SWIFT messages for settlement: the ISO 15022 FIN parser and MT54x writers/readers, and ISO 20022 sese.02x.

``fin`` reads any FIN message into blocks, fields and the 16R/16S sequence tree; ``mt54x`` writes MT540-543 and
reads MT544-548; ``iso20022`` writes sese.023 and reads sese.024/025.
"""

from .fin import (
    Field,
    FinMessage,
    FinParseError,
    Sequence,
    parse_fin,
    swift_amount,
    swift_date,
    swift_datetime,
    swift_decimal,
    swift_price,
    swift_quantity,
)

__all__ = [
    "Field",
    "FinMessage",
    "FinParseError",
    "Sequence",
    "parse_fin",
    "swift_amount",
    "swift_date",
    "swift_datetime",
    "swift_decimal",
    "swift_price",
    "swift_quantity",
]
