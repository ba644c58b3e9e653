"""Column-mapping profiles: how one front-office source lays out its CSV or XLSX trade files.

A profile names, for each of OpsDesk's canonical fields, the column header the source uses, and says how the source
writes numbers (decimal and thousands separators), dates, times, sides and actions, which text encoding its CSV
files use and in which time zone its naive times are. Profiles are selected by name (``--profile de_oms``) or by the
path of a JSON file with the same keys as :class:`Profile` (for a new source, before it is built in).

Canonical fields (``FIELDS``):

=================== ========= ===============================================================================
field               required  meaning
=================== ========= ===============================================================================
trade_ref           yes       the front office's trade reference; one OpsDesk trade per reference
action              no        NEW / AMEND / CANCEL (profile ``action_codes``); blank = NEW
order_ref           no        the order the trade fills
isin                yes       ISIN of the instrument
account             yes       our account code (client or house)
counterparty        yes*      counterparty code; *or a counterparty_lei / counterparty_bic column instead
counterparty_lei    no        counterparty LEI (checked: ISO 17442 check digits, and against reference data)
counterparty_bic    no        counterparty BIC (checked: ISO 9362 format, and against reference data)
side                yes       buy or sell (profile ``side_codes``)
quantity            yes       shares, nominal (bonds) or contracts (futures)
price               yes       per unit; bonds in percent of nominal
currency            no        ISO 4217; blank = the instrument's currency
trade_date          yes       profile ``date_format``
trade_time          no        time of day (``time_format``) or a full ISO 8601 timestamp; blank = 00:00
settlement_date     no        if given, checked against the date OpsDesk computes
=================== ========= ===============================================================================

Amend and cancel convention for files: a line whose trade_ref is already known is compared with the trade: the
same content is a duplicate (nothing happens), different content is an amendment (a new front-office version);
``action`` CANCEL cancels the trade (only trade_ref is needed on such a line). ``action`` AMEND on an unknown
reference books the trade as new (the original never reached us; nothing is lost).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from app.services.errors import ValidationFailed

P = TypeVar("P")

FIELDS: tuple[str, ...] = (
    "trade_ref",
    "action",
    "order_ref",
    "isin",
    "account",
    "counterparty",
    "counterparty_lei",
    "counterparty_bic",
    "side",
    "quantity",
    "price",
    "currency",
    "trade_date",
    "trade_time",
    "settlement_date",
)
REQUIRED: tuple[str, ...] = ("trade_ref", "isin", "account", "side", "quantity", "price", "trade_date")
# One of these must be mapped so the counterparty can be identified.
COUNTERPARTY_KEYS: tuple[str, ...] = ("counterparty", "counterparty_lei", "counterparty_bic")

_DEFAULT_SIDES = {"BUY": "BUY", "B": "BUY", "SELL": "SELL", "S": "SELL"}
_DEFAULT_ACTIONS = {
    "": "NEW",
    "NEW": "NEW",
    "N": "NEW",
    "AMEND": "AMEND",
    "A": "AMEND",
    "CANCEL": "CANCEL",
    "C": "CANCEL",
}


def _frozen(d: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class Profile:
    """How one source writes its trade files. Codes in ``side_codes``/``action_codes`` match case-insensitively."""

    name: str
    description: str
    columns: Mapping[str, str]  # canonical field -> the source's column header
    delimiter: str = ","
    encoding: str = "utf-8-sig"  # utf-8-sig also reads plain UTF-8; it drops a byte-order mark
    decimal: str = "."
    thousands: str | None = None
    date_format: str = "%Y-%m-%d"
    time_format: str = "%H:%M:%S"
    timezone: str = "UTC"  # zone of naive trade times
    side_codes: Mapping[str, str] = field(default_factory=lambda: _frozen(_DEFAULT_SIDES))
    action_codes: Mapping[str, str] = field(default_factory=lambda: _frozen(_DEFAULT_ACTIONS))
    sheet: str | None = None  # XLSX: the worksheet to read; default the first

    def header_for(self, canonical: str) -> str | None:
        return self.columns.get(canonical)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = dict(v) if isinstance(v, Mapping) else v
        return out


def _profile(**kw: Any) -> Profile:
    for key in ("columns", "side_codes", "action_codes"):
        if key in kw:
            kw[key] = _frozen({(k.upper() if key != "columns" else k): v for k, v in kw[key].items()})
    return Profile(**kw)


BUILTIN: dict[str, Profile] = {
    p.name: p
    for p in (
        _profile(
            name="default",
            description="OpsDesk's own layout: our field names as headers, comma-separated UTF-8, ISO dates, "
            "'.' decimals, BUY/SELL (or B/S), times in UTC",
            columns={f: f for f in FIELDS},
        ),
        _profile(
            name="de_oms",
            description="German order-management export (Excel 'CSV (Trennzeichen-getrennt)'): ';'-separated "
            "Windows-1252, day-first dates (31.12.2026), decimal comma with '.' thousands, sides 1/2 (FIX) or "
            "K/V (Kauf/Verkauf), times in Europe/Berlin",
            columns={
                "trade_ref": "Geschäftsnummer",
                "action": "Aktion",
                "order_ref": "Auftragsnummer",
                "isin": "ISIN",
                "account": "Depot",
                "counterparty": "Kontrahent",
                "counterparty_lei": "LEI Kontrahent",
                "side": "K/V",
                "quantity": "Stück/Nominal",
                "price": "Kurs",
                "currency": "Währung",
                "trade_date": "Handelstag",
                "trade_time": "Handelszeit",
                "settlement_date": "Valuta",
            },
            delimiter=";",
            encoding="cp1252",
            decimal=",",
            thousands=".",
            date_format="%d.%m.%Y",
            time_format="%H:%M:%S",
            timezone="Europe/Berlin",
            side_codes={"1": "BUY", "2": "SELL", "K": "BUY", "V": "SELL"},
            action_codes={"": "NEW", "NEU": "NEW", "ÄND": "AMEND", "AEND": "AMEND", "STORNO": "CANCEL"},
        ),
        _profile(
            name="us_blotter",
            description="US broker blotter export: comma-separated UTF-8 with quoted '1,000' thousands, "
            "month-first dates (11/25/2026), B/S sides, execution times in America/New_York",
            columns={
                "trade_ref": "Trade ID",
                "order_ref": "Order ID",
                "action": "Status",
                "isin": "ISIN",
                "account": "Acct",
                "counterparty": "Exec Broker",
                "counterparty_bic": "Broker BIC",
                "side": "B/S",
                "quantity": "Shares",
                "price": "Price",
                "currency": "Ccy",
                "trade_date": "Trade Date",
                "trade_time": "Exec Time",
            },
            thousands=",",
            date_format="%m/%d/%Y",
            time_format="%H:%M:%S",
            timezone="America/New_York",
            side_codes={"B": "BUY", "S": "SELL", "SS": "SELL", "BC": "BUY"},  # sell short, buy to cover
            action_codes={"": "NEW", "NEW": "NEW", "COR": "AMEND", "CXL": "CANCEL"},
        ),
    )
}


def known_profiles() -> list[str]:
    return sorted(BUILTIN)


def _check(profile: Profile, origin: str) -> Profile:
    unknown = set(profile.columns) - set(FIELDS)
    if unknown:
        raise ValidationFailed(
            f"Profile {origin} maps unknown fields {', '.join(sorted(unknown))}; the fields are {', '.join(FIELDS)}."
        )
    missing = [f for f in REQUIRED if f not in profile.columns]
    if missing or not any(k in profile.columns for k in COUNTERPARTY_KEYS):
        missing += [] if any(k in profile.columns for k in COUNTERPARTY_KEYS) else ["counterparty"]
        raise ValidationFailed(f"Profile {origin} does not map the required fields {', '.join(missing)}.")
    bad_sides = {v for v in profile.side_codes.values() if v not in ("BUY", "SELL")}
    bad_actions = {v for v in profile.action_codes.values() if v not in ("NEW", "AMEND", "CANCEL")}
    if bad_sides or bad_actions:
        raise ValidationFailed(
            f"Profile {origin}: side codes must map to BUY/SELL and action codes to NEW/AMEND/CANCEL "
            f"(found {', '.join(sorted(bad_sides | bad_actions))})."
        )
    if len(profile.delimiter) != 1:
        raise ValidationFailed(
            f"Profile {origin}: the delimiter must be one character, not {profile.delimiter!r}."
        )
    return profile


def load_profile(name_or_path: str | None) -> Profile:
    """A built-in profile by name (default: ``default``), or a JSON profile file by path.

    An unknown name is refused with the list of known ones.
    """
    key = (name_or_path or "default").strip()
    return lookup_profile(
        key, BUILTIN, _profile, {f.name for f in fields(Profile)}, _check, what="import", say_allowed=True
    )


def lookup_profile(
    key: str,
    builtin: Mapping[str, P],
    make: Callable[..., P],
    keys: set[str],
    check: Callable[[P, str], P],
    *,
    what: str,
    say_allowed: bool,
) -> P:
    """The built-in profile named ``key``, or the JSON profile file at path ``key`` (its ``keys`` given to ``make``;
    name and description default to the file's), checked by ``check``. Shared with the statement profiles.

    Anything else is refused, naming the known profiles (``what`` says whose: "import", "statement").
    """
    if key in builtin:
        return builtin[key]
    path = Path(key)
    if path.suffix.lower() == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            extra = set(data) - keys
            if extra:
                allowed = f"; allowed: {', '.join(sorted(keys))}" if say_allowed else ""
                raise ValidationFailed(
                    f"Profile file {path.name} has unknown keys {', '.join(sorted(extra))}{allowed}."
                )
            data.setdefault("name", path.stem)
            data.setdefault("description", f"profile file {path.name}")
            return check(make(**data), f"file {path.name}")
        except (OSError, ValueError, TypeError) as err:
            raise ValidationFailed(f"Profile file {path.name} cannot be read: {err}.") from err
    raise ValidationFailed(
        f"There is no {what} profile named '{key}'. Known profiles: {', '.join(sorted(builtin))} "
        "(or give the path of a .json profile file)."
    )


for _p in BUILTIN.values():
    _check(_p, f"'{_p.name}'")
