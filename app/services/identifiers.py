"""Market identifiers: ISIN (ISO 6166), LEI (ISO 17442) and BIC (ISO 9362), checked with python-stdnum.

Each ``validate_*`` returns the compact form (upper case, no spaces) or raises ``ValidationFailed`` whose message
says what is wrong in words a clerk can act on: the wrong length, an unknown country code, or which check digit
was expected, so a typing error in a repair screen is found at once. ``is_valid_*`` are the boolean forms for
vectorised filters. ``make_isin``, ``make_lei`` and ``make_cusip`` compute check digits; the demo book uses them
to give its synthetic securities and counterparties identifiers that pass the same checks as real ones.
"""

from __future__ import annotations

import re

from stdnum import bic as _bic
from stdnum import cusip as _cusip
from stdnum import isin as _isin
from stdnum import lei as _lei
from stdnum.exceptions import InvalidComponent, ValidationError
from stdnum.iso7064 import mod_97_10

from .errors import ValidationFailed

_ALNUM = re.compile(r"^[0-9A-Z]*$")
_ISIN_EXTRA_PREFIXES = "XS (international securities), EU (European Union)"


def _compact(value: object, what: str) -> str:
    if value is None or not str(value).strip():
        raise ValidationFailed(f"No {what} given.", [("", what, "missing")])
    # Separators people paste (spaces, dashes, dots) are not part of any of these codes.
    return re.sub(r"[\s\-.]", "", str(value)).upper()


def _refuse(value: str, what: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"'{value}' is not a valid {what}: {reason}.", [(value, what, reason)])


def _bad_characters(number: str) -> str:
    return ", ".join(sorted({repr(c) for c in number if not ("0" <= c <= "9" or "A" <= c <= "Z")}))


# --- ISIN -----------------------------------------------------------------------------------------------------------


def validate_isin(value: str) -> str:
    """The ISIN in compact form, or ValidationFailed naming the problem (length, country, characters, check digit).

    An ISIN is a 2-letter country code (or XS/EU), a 9-character national security code (CUSIP in the US, SEDOL in
    the UK, WKN in Germany ...) and one check digit (Luhn over the letters converted to numbers).
    """
    number = _compact(value, "ISIN")
    if not _ALNUM.match(number):
        raise _refuse(
            number, "ISIN", f"it may contain only letters A-Z and digits, not {_bad_characters(number)}"
        )
    if len(number) != 12:
        raise _refuse(
            number,
            "ISIN",
            f"it has {len(number)} characters; an ISIN has 12 (2-letter country, 9-character national code, "
            "1 check digit)",
        )
    country = number[:2]
    if not country.isalpha():
        raise _refuse(number, "ISIN", f"it must start with a 2-letter country code, not '{country}'")
    try:
        _isin.validate(number)
    except InvalidComponent:
        raise _refuse(
            number,
            "ISIN",
            f"'{country}' is not an ISO 3166 country code nor an ISIN prefix such as {_ISIN_EXTRA_PREFIXES}",
        ) from None
    except ValidationError:
        expected = _isin.calc_check_digit(number[:-1])
        raise _refuse(
            number,
            "ISIN",
            f"the check digit is '{number[-1]}' but {number[:-1]} needs '{expected}' "
            "(a typing error in one of the characters?)",
        ) from None
    return number


def is_valid_isin(value: str) -> bool:
    try:
        validate_isin(value)
    except ValidationFailed:
        return False
    return True


def make_isin(country: str, nsin: str) -> str:
    """An ISIN for a national security code (padded on the left with zeros to 9 characters), check digit added."""
    country = country.strip().upper()
    nsin = _compact(nsin, "national security code")
    if len(country) != 2 or not country.isalpha():
        raise ValidationFailed(f"'{country}' is not a 2-letter country code.")
    if len(nsin) > 9 or not _ALNUM.match(nsin):
        raise ValidationFailed(f"'{nsin}' is not a national security code (at most 9 letters and digits).")
    body = country + nsin.rjust(9, "0")
    return validate_isin(body + _isin.calc_check_digit(body))


def make_cusip(base8: str) -> str:
    """A 9-character CUSIP (the US national code inside a US ISIN) for an 8-character base, check digit added."""
    base8 = _compact(base8, "CUSIP base")
    if len(base8) != 8 or not _ALNUM.match(base8):
        raise ValidationFailed(f"'{base8}' is not an 8-character CUSIP base.")
    return base8 + _cusip.calc_check_digit(base8)


# --- LEI ------------------------------------------------------------------------------------------------------------


def validate_lei(value: str) -> str:
    """The LEI in compact form, or ValidationFailed naming the problem.

    An LEI (ISO 17442) is 18 letters and digits (the issuing LOU's prefix, then the entity part) followed by two
    check digits chosen so that the whole code, letters converted to numbers (A=10 ... Z=35), is 1 modulo 97.
    """
    number = _compact(value, "LEI")
    if not _ALNUM.match(number):
        raise _refuse(
            number, "LEI", f"it may contain only letters A-Z and digits, not {_bad_characters(number)}"
        )
    if len(number) != 20:
        raise _refuse(
            number,
            "LEI",
            f"it has {len(number)} characters; an LEI has 20 (18 letters or digits, 2 check digits)",
        )
    expected = mod_97_10.calc_check_digits(number[:-2])
    if not number[-2:].isdigit() or number[-2:] != expected:
        raise _refuse(
            number,
            "LEI",
            f"the check digits are '{number[-2:]}' but {number[:-2]} needs '{expected}' "
            "(a typing error in one of the characters?)",
        )
    return _lei.validate(number)


def is_valid_lei(value: str) -> bool:
    try:
        validate_lei(value)
    except ValidationFailed:
        return False
    return True


def make_lei(prefix18: str) -> str:
    """An LEI for an 18-character prefix (LOU prefix + entity part), the two ISO 7064 mod 97-10 check digits added."""
    prefix18 = _compact(prefix18, "LEI prefix")
    if len(prefix18) != 18 or not _ALNUM.match(prefix18):
        raise ValidationFailed(f"'{prefix18}' is not an 18-character LEI prefix (letters A-Z and digits).")
    return validate_lei(prefix18 + mod_97_10.calc_check_digits(prefix18))


# --- BIC ------------------------------------------------------------------------------------------------------------


def validate_bic(value: str) -> str:
    """The BIC in compact form, or ValidationFailed naming the part that is wrong.

    A BIC (ISO 9362, "SWIFT code") is a 4-letter institution code, a 2-letter ISO 3166 country code, a 2-character
    location code and optionally a 3-character branch code (8 or 11 characters). A BIC has NO check digit: a
    well-formed BIC with a valid country can still name no institution, which only the SWIFT directory can tell.
    """
    number = _compact(value, "BIC")
    if not _ALNUM.match(number):
        raise _refuse(
            number, "BIC", f"it may contain only letters A-Z and digits, not {_bad_characters(number)}"
        )
    if len(number) not in (8, 11):
        raise _refuse(
            number,
            "BIC",
            f"it has {len(number)} characters; a BIC has 8 (institution, country, location) or 11 (with branch)",
        )
    if not number[:4].isalpha():
        raise _refuse(number, "BIC", f"the institution code '{number[:4]}' must be 4 letters")
    if not number[4:6].isalpha():
        raise _refuse(number, "BIC", f"the country code '{number[4:6]}' must be 2 letters")
    try:
        _bic.validate(number)
    except ValidationError:
        raise _refuse(number, "BIC", f"'{number[4:6]}' is not an ISO 3166 country code") from None
    return number


def is_valid_bic(value: str) -> bool:
    try:
        validate_bic(value)
    except ValidationFailed:
        return False
    return True
