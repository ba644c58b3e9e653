"""ISIN, LEI and BIC checks: real identifiers pass, altered ones are refused with a message a clerk can act on."""

from __future__ import annotations

import pytest
from stdnum.iso7064 import mod_97_10

from app.services.errors import ValidationFailed
from app.services.identifiers import (
    is_valid_bic,
    is_valid_isin,
    is_valid_lei,
    make_cusip,
    make_isin,
    make_lei,
    validate_bic,
    validate_isin,
    validate_lei,
)

REAL_ISINS = [
    "US0378331005",  # Apple
    "US5949181045",  # Microsoft
    "US02079K3059",  # Alphabet (letter inside the CUSIP)
    "DE0007164600",  # SAP
    "NL0010273215",  # ASML
    "GB0005405286",  # HSBC
    "GB00BP6MXD84",  # Shell (SEDOL with letters)
    "CH0038863350",  # Nestle
    "JP3633400001",  # Toyota
    "IE00B4L5Y983",  # iShares Core MSCI World
    "DE0001102606",  # Bund 1.70% 2032
    "DE000BU2Z031",  # Bund 2.60% 2034
]
REAL_LEIS = [
    "HWUPKR0MPOU8FGXBT394",  # Apple Inc.
    "7LTWFZYICNSX8D621K86",  # Deutsche Bank AG
    "R0MUWSFPU8MPRO8K5P83",  # BNP Paribas
    "506700GE1G29325QX363",  # GLEIF
]
REAL_BICS = ["DEUTDEFF", "DEUTDEFF500", "DTCYUS33", "CRSTGB22", "NECINL2A", "DAKVDEFF", "CITIUS33"]


@pytest.mark.parametrize("isin", REAL_ISINS)
def test_real_isins_are_valid(isin: str) -> None:
    assert validate_isin(isin) == isin
    assert is_valid_isin(isin)
    # What people paste: lower case and spaces.
    assert validate_isin(f" {isin[:2].lower()} {isin[2:]} ") == isin


@pytest.mark.parametrize("isin", REAL_ISINS)
def test_altered_isin_check_digit_names_the_expected_digit(isin: str) -> None:
    wrong = isin[:-1] + str((int(isin[-1]) + 3) % 10)
    assert not is_valid_isin(wrong)
    with pytest.raises(ValidationFailed) as err:
        validate_isin(wrong)
    message = str(err.value)
    assert f"the check digit is '{wrong[-1]}'" in message
    assert f"needs '{isin[-1]}'" in message
    assert err.value.problems and err.value.problems[0][1] == "ISIN"


def test_typo_in_the_body_is_caught_by_the_check_digit() -> None:
    # Swapping two adjacent digits of Apple's CUSIP keeps the length and country but breaks the Luhn sum.
    with pytest.raises(ValidationFailed, match="needs '"):
        validate_isin("US0378313005")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("US03783310", "it has 10 characters; an ISIN has 12"),
        ("US03783310055", "it has 13 characters"),
        ("ZZ0378331005", "'ZZ' is not an ISO 3166 country code"),
        ("120378331005", "must start with a 2-letter country code"),
        ("US037833100_", "only letters A-Z and digits, not '_'"),
        ("", "No ISIN given"),
    ],
)
def test_isin_refusals_say_what_is_wrong(value: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        validate_isin(value)
    assert fragment in str(err.value)


def test_international_prefixes_are_accepted() -> None:
    # Eurobonds carry XS, EU institutions EU: not countries, but valid ISIN prefixes.
    for prefix in ("XS", "EU"):
        made = make_isin(prefix, "275441696")
        assert validate_isin(made) == made


def test_make_isin_computes_the_real_check_digit() -> None:
    assert make_isin("US", "037833100") == "US0378331005"
    assert make_isin("de", "000716460") == "DE0007164600"
    # A UK SEDOL is padded on the left to the 9-character national code.
    assert make_isin("GB", "BQC82C9") == "GB00BQC82C90"
    for isin in REAL_ISINS:
        assert make_isin(isin[:2], isin[2:11]) == isin
    with pytest.raises(ValidationFailed):
        make_isin("U1", "037833100")
    with pytest.raises(ValidationFailed):
        make_isin("US", "0378331001")  # ten characters


def test_make_cusip() -> None:
    assert make_cusip("03783310") == "037833100"  # Apple
    assert make_cusip("02079K30") == "02079K305"  # Alphabet
    with pytest.raises(ValidationFailed):
        make_cusip("0378331")


@pytest.mark.parametrize("lei", REAL_LEIS)
def test_real_leis_are_valid(lei: str) -> None:
    assert validate_lei(lei) == lei
    assert is_valid_lei(lei)
    assert validate_lei(f"{lei[:4]} {lei[4:]}".lower()) == lei


@pytest.mark.parametrize("lei", REAL_LEIS)
def test_altered_lei_names_the_expected_check_digits(lei: str) -> None:
    # Change one character of the entity part: the two check digits no longer fit.
    k = 10
    replacement = "A" if lei[k] != "A" else "B"
    wrong = lei[:k] + replacement + lei[k + 1 :]
    expected = mod_97_10.calc_check_digits(wrong[:-2])
    assert expected != lei[-2:]
    with pytest.raises(ValidationFailed) as err:
        validate_lei(wrong)
    assert f"the check digits are '{lei[-2:]}'" in str(err.value)
    assert f"needs '{expected}'" in str(err.value)
    assert not is_valid_lei(wrong)


def test_lei_refusals_say_what_is_wrong() -> None:
    with pytest.raises(ValidationFailed, match="it has 19 characters; an LEI has 20"):
        validate_lei("HWUPKR0MPOU8FGXBT39")
    with pytest.raises(ValidationFailed, match="only letters A-Z and digits"):
        validate_lei("HWUPKR0MPOU8FGXBT3_4")


def test_make_lei_computes_iso_17442_check_digits() -> None:
    for lei in REAL_LEIS:
        assert make_lei(lei[:18]) == lei
    made = make_lei("549300ABCDEFGHIJKL")
    assert made.startswith("549300ABCDEFGHIJKL") and is_valid_lei(made)
    with pytest.raises(ValidationFailed):
        make_lei("549300ABC")


@pytest.mark.parametrize("bic", REAL_BICS)
def test_real_bics_are_valid(bic: str) -> None:
    assert validate_bic(bic) == bic
    assert is_valid_bic(bic)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("DEUTDEF", "it has 7 characters; a BIC has 8"),
        ("DEUTDEFF50", "it has 10 characters"),
        ("DEU1DEFF", "the institution code 'DEU1' must be 4 letters"),
        ("DEUT1EFF", "the country code '1E' must be 2 letters"),
        ("DEUTZZFF", "'ZZ' is not an ISO 3166 country code"),
    ],
)
def test_bic_refusals_name_the_part_that_is_wrong(value: str, fragment: str) -> None:
    with pytest.raises(ValidationFailed) as err:
        validate_bic(value)
    assert fragment in str(err.value)
    assert not is_valid_bic(value)


def test_a_bic_has_no_check_digit() -> None:
    # A well-formed code with a real country passes even if no bank has it: only the SWIFT directory knows.
    assert validate_bic("ZZZZUS33") == "ZZZZUS33"
