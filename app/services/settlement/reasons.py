"""Market reason codes for unmatched, pending, failing and rejected settlement (MT548 :24B:, sese.024 ``Rsn/Cd``).

The codes are the market's own (ISO 15022/20022 external code list, the ones T2S and the big CSDs use). A clerk
sees them in words: :func:`words` is the short label for a column, :func:`describe` the sentence for a tooltip or the
detail pane, and :func:`category` groups them (matching, securities, cash, static data, lifecycle).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    words: str  # a few words for a column
    sentence: str  # what happened and what usually fixes it
    category: str  # matching | securities | cash | static data | lifecycle | other


_R = Reason
REASONS: dict[str, Reason] = {
    r.code: r
    for r in (
        # Matching: the two instructions disagree (MT548 :24B::NMAT, sese.024 Umtchd/Rsn).
        _R(
            "CMIS",
            "No counterparty instruction",
            "The CSD holds no matching instruction from the counterparty; chase them to instruct.",
            "matching",
        ),
        _R(
            "DDAT",
            "Settlement date differs",
            "The counterparty instructed another settlement date; agree the date and have one side amend.",
            "matching",
        ),
        _R(
            "DQUA",
            "Quantity differs",
            "The counterparty instructed another quantity of securities; check the "
            "trade and amend the wrong side.",
            "matching",
        ),
        _R(
            "DMON",
            "Amount differs",
            "The settlement amounts differ by more than the market tolerance; check "
            "price, fees and accrued interest.",
            "matching",
        ),
        _R(
            "DSEC",
            "Security differs",
            "The counterparty instructed another ISIN; check the instrument on the trade.",
            "matching",
        ),
        _R(
            "DEPT",
            "Place of settlement differs",
            "The counterparty named another place of settlement (CSD); check both SSIs.",
            "matching",
        ),
        _R(
            "DELN",
            "Direction differs",
            "Both sides instructed the same direction (both deliver or both "
            "receive); one side has the trade the wrong way round.",
            "matching",
        ),
        _R("DTRD", "Trade date differs", "The counterparty instructed another trade date.", "matching"),
        _R("DCUR", "Currency differs", "The settlement currencies differ.", "matching"),
        _R("DDEA", "Deal price differs", "The deal prices differ.", "matching"),
        _R(
            "DTRA",
            "Transaction type differs",
            "The transaction types differ (e.g. trade vs repo).",
            "matching",
        ),
        _R(
            "DSET",
            "Settlement condition differs",
            "The settlement transaction conditions differ.",
            "matching",
        ),
        _R(
            "ICAG",
            "Wrong counterparty agent",
            "The counterparty's agent or its account is not the one we instructed; check their SSI.",
            "matching",
        ),
        _R(
            "ICUS",
            "Wrong counterparty custodian",
            "The counterparty's custodian is not the one we instructed.",
            "matching",
        ),
        _R(
            "IEXE",
            "Wrong counterparty",
            "The buyer or seller named does not match the counterparty's instruction.",
            "matching",
        ),
        _R(
            "NCRR",
            "Counterparty reference missing",
            "The counterparty's reference is missing or wrong.",
            "matching",
        ),
        _R(
            "PODU",
            "Possible duplicate",
            "The instruction may be a duplicate of one already sent.",
            "matching",
        ),
        # Settlement pending / failing (MT548 :24B::PEND / PENF, sese.024 Pdg/Flng).
        _R(
            "LACK",
            "Lack of securities",
            "The delivering party does not hold enough securities; it settles when "
            "they arrive (partial settlement may apply).",
            "securities",
        ),
        _R(
            "LALO", "Securities on loan", "The securities are out on loan and not yet returned.", "securities"
        ),
        _R(
            "BLOC",
            "Securities blocked",
            "The securities are blocked (e.g. a corporate action or a pledge).",
            "securities",
        ),
        _R(
            "MONY",
            "Lack of cash",
            "The receiving party has not enough cash or credit; it settles when it is funded.",
            "cash",
        ),
        _R("CMON", "Awaiting money", "The counterparty lacks the cash.", "cash"),
        _R(
            "CLAC",
            "Counterparty lacks securities",
            "The counterparty does not hold enough securities to deliver.",
            "securities",
        ),
        _R("YCOL", "Collateral pending", "Waiting for collateral (auto-collateralisation).", "cash"),
        _R(
            "CYCL", "Awaiting next cycle", "The instruction waits for the next settlement cycle.", "lifecycle"
        ),
        _R("FUTU", "Future settlement date", "The settlement date has not come yet.", "lifecycle"),
        _R(
            "PREA", "Waiting for settlement date", "Matched and waiting for its settlement date.", "lifecycle"
        ),
        _R("NCON", "Not confirmed", "The trade is not yet confirmed or affirmed; confirm it.", "lifecycle"),
        _R(
            "CPEC",
            "Counterparty: settlement condition",
            "The counterparty's instruction is on hold (party hold).",
            "lifecycle",
        ),
        _R("PRCY", "Counterparty on hold", "The counterparty's instruction is on hold.", "lifecycle"),
        _R(
            "PRSY",
            "On hold by the system",
            "The CSD put the instruction on hold (e.g. a CSD restriction).",
            "lifecycle",
        ),
        _R("PART", "Partial settlement", "Part settled; the rest is pending.", "lifecycle"),
        _R(
            "LINK",
            "Waiting for a linked instruction",
            "Settlement waits for a linked instruction to settle.",
            "lifecycle",
        ),
        _R(
            "CAIS",
            "Corporate action in progress",
            "A corporate action on the security is in progress.",
            "lifecycle",
        ),
        _R("GLOB", "Global certificate", "Waiting for the global certificate.", "lifecycle"),
        _R(
            "BENO",
            "Beneficial owner not allowed",
            "The beneficial owner is not allowed to hold the security.",
            "static data",
        ),
        _R(
            "SAFE",
            "Invalid safekeeping account",
            "The safekeeping account is unknown or closed; check our SSI.",
            "static data",
        ),
        _R("DEPO", "Invalid place of safekeeping", "The place of safekeeping is invalid.", "static data"),
        _R(
            "REFE",
            "Duplicate reference",
            "Our reference was already used; instruct again with a new one.",
            "static data",
        ),
        _R("NARR", "See narrative", "The reason is only given in the narrative text.", "other"),
        _R("OTHR", "Other reason", "A reason not covered by a code; read the narrative.", "other"),
        _R("CANI", "Cancelled by us", "The instruction was cancelled at our request.", "lifecycle"),
        _R(
            "CANS",
            "Cancelled by the CSD",
            "The CSD cancelled the instruction (e.g. unmatched for too long).",
            "lifecycle",
        ),
        _R(
            "CSUB",
            "Cancelled for a substitute",
            "Cancelled and replaced by another instruction.",
            "lifecycle",
        ),
    )
}


def reason(code: str | None) -> Reason | None:
    """The reason for ``code`` (case and surrounding blanks ignored), or None when the code is unknown."""
    if not code:
        return None
    return REASONS.get(code.strip().upper())


def words(code: str | None) -> str:
    """A few words for a table column: ``"No counterparty instruction"``; an unknown code is shown as itself."""
    r = reason(code)
    if r is not None:
        return r.words
    return (code or "").strip().upper()


def describe(code: str | None) -> str:
    """The sentence a clerk reads: ``"CMIS — No counterparty instruction: The CSD holds no matching ..."``.

    An unknown code is still shown (never an error): the market adds codes and a proprietary scheme may send its
    own.
    """
    if not code or not code.strip():
        return "No reason given"
    r = reason(code)
    c = code.strip().upper()
    if r is None:
        return f"{c} — unknown reason code (not in the market list); read the message narrative"
    return f"{c} — {r.words}: {r.sentence}"


def category(code: str | None) -> str:
    r = reason(code)
    return r.category if r else "other"
