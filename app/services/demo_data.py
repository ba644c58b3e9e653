"""Static reference lists for the demo book: markets, real securities, counterparties, accounts, settlement agents.

The real securities carry their real ISINs, trading currencies and primary markets (each ISIN is checked by the
tests); prices are realistic round figures, not quotes. Government bonds marked ``real=True`` are real issues
(Bunds and Gilts); the US Treasuries, the rest of the bonds, the futures and every counterparty and account are
synthetic, with identifiers that pass the same check-digit rules. Settlement agents and CSDs are named by their
real BICs because that is what a clerk recognises on an SSI.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.models.enums import AssetClass, KycStatus, Liquidity, Role, Segregation

# Settlement-cycle changes: US T+1 from 28 May 2024; EU, UK and Switzerland T+1 from 11 October 2027.
US_T1 = dt.date(2024, 5, 28)
EU_T1 = dt.date(2027, 10, 11)

CURRENCIES = ("USD", "EUR", "GBP", "CHF", "JPY")
# Yen has no minor unit: amounts round to whole yen.
WHOLE_UNIT_CURRENCIES = frozenset({"JPY"})


@dataclass(frozen=True)
class MarketSpec:
    mic: str
    name: str
    country: str
    timezone: str
    calendar_code: str
    csd_bic: str
    cutoff: dt.time  # instruction cut-off at the CSD, market local time (approximate)
    currency: str
    opens: dt.time  # continuous trading, market local time; demo trade times fall inside
    closes: dt.time
    our_agent_bic: str  # our settlement agent / custodian in this market
    their_agent_bics: tuple[str, ...]  # agents the counterparties use here
    region: str  # US, EU, UK, CH, JP: settlement-cycle rules and which counterparties trade here


US_AGENTS = ("CITIUS33", "CHASUS33", "SBOSUS33", "IRVTUS3N")
DE_AGENTS = ("DEUTDEFF", "COBADEFF", "HYVEDEMM")
US_HOURS = (dt.time(9, 30), dt.time(16, 0))
EU_HOURS = (dt.time(9, 0), dt.time(17, 30))


def _market(
    mic: str,
    name: str,
    country: str,
    tz: str,
    calendar: str,
    csd: str,
    cutoff: dt.time,
    currency: str,
    hours: tuple[dt.time, dt.time],
    ours: str,
    theirs: tuple[str, ...],
    region: str,
) -> MarketSpec:
    return MarketSpec(
        mic, name, country, tz, calendar, csd, cutoff, currency, hours[0], hours[1], ours, theirs, region
    )


# fmt: off
MARKETS: tuple[MarketSpec, ...] = (
    #       MIC     name                                     ctry  time zone            calendar CSD BIC     cut-off            ccy    trading hours                         our agent   their agents                                    region
    _market("XNAS", "Nasdaq Stock Market",                   "US", "America/New_York",  "XNAS", "DTCYUS33", dt.time(21, 0), "USD", US_HOURS,                              "IRVTUS3N", US_AGENTS,                                      "US"),
    _market("XNYS", "New York Stock Exchange",               "US", "America/New_York",  "XNYS", "DTCYUS33", dt.time(21, 0), "USD", US_HOURS,                              "IRVTUS3N", US_AGENTS,                                      "US"),
    _market("ARCX", "NYSE Arca",                             "US", "America/New_York",  "ARCX", "DTCYUS33", dt.time(21, 0), "USD", US_HOURS,                              "IRVTUS3N", US_AGENTS,                                      "US"),
    # US Treasuries trade over the counter and settle on Fedwire Securities; MIC XOFF (off-exchange). The calendar
    # is the NYSE's plus the Fedwire closures (Columbus Day, Veterans Day) kept as market holidays.
    _market("XOFF", "US Treasuries OTC (Fedwire Securities)", "US", "America/New_York", "XNYS", "FRNYUS33", dt.time(15, 0), "USD", (dt.time(8, 0), dt.time(17, 0)), "IRVTUS3N", ("CHASUS33", "IRVTUS3N"),                     "US"),
    _market("XETR", "Xetra (Deutsche Boerse)",               "DE", "Europe/Berlin",     "XETR", "DAKVDEFF", dt.time(16, 0), "EUR", EU_HOURS,                              "DEUTDEFF", DE_AGENTS,                                      "EU"),
    _market("XFRA", "Boerse Frankfurt (bonds)",              "DE", "Europe/Berlin",     "XFRA", "DAKVDEFF", dt.time(16, 0), "EUR", EU_HOURS,                              "DEUTDEFF", DE_AGENTS,                                      "EU"),
    _market("XAMS", "Euronext Amsterdam",                    "NL", "Europe/Amsterdam",  "XAMS", "NECINL2A", dt.time(16, 0), "EUR", EU_HOURS,                              "ABNANL2A", ("ABNANL2A", "INGBNL2A", "RABONL2U"),           "EU"),
    _market("XPAR", "Euronext Paris",                        "FR", "Europe/Paris",      "XPAR", "SICVFRPP", dt.time(16, 0), "EUR", EU_HOURS,                              "PARBFRPP", ("PARBFRPP", "SOGEFRPP", "BNPAFRPP"),           "EU"),
    _market("XLUX", "Luxembourg Stock Exchange (Eurobonds)", "LU", "Europe/Luxembourg", "XLUX", "CEDELULL", dt.time(16, 0), "EUR", EU_HOURS,                              "CEDELULL", ("CEDELULL", "BILLLULL"),                       "EU"),
    _market("XLON", "London Stock Exchange",                 "GB", "Europe/London",     "XLON", "CRSTGB22", dt.time(16, 0), "GBP", (dt.time(8, 0), dt.time(16, 30)),  "MIDLGB22", ("MIDLGB22", "BARCGB22", "CITIGB2L", "CHASGB2L"), "UK"),
    _market("XSWX", "SIX Swiss Exchange",                    "CH", "Europe/Zurich",     "XSWX", "INSECHZZ", dt.time(16, 0), "CHF", EU_HOURS,                              "UBSWCHZH", ("UBSWCHZH", "ZKBKCHZZ"),                       "CH"),
    _market("XTKS", "Tokyo Stock Exchange",                  "JP", "Asia/Tokyo",        "XTKS", "JJSDJPJT", dt.time(14, 0), "JPY", (dt.time(9, 0), dt.time(15, 30)),  "MHCBJPJT", ("MHCBJPJT", "SMBCJPJT", "BOTKJPJT"),           "JP"),
    # Eurex futures are cleared by Eurex Clearing (the CCP): no CSD delivery, positions are kept in contracts.
    _market("XEUR", "Eurex Deutschland",                     "DE", "Europe/Berlin",     "XEUR", "EUXCDEFF", dt.time(18, 0), "EUR", (dt.time(8, 0), dt.time(22, 0)),   "DEUTDEFF", ("DEUTDEFF", "COBADEFF"),                       "EU"),
)
# fmt: on

# Cash correspondents that send our bank statements, per currency.
CASH_BANK_BICS = {
    "USD": "CHASUS33",
    "EUR": "DEUTDEFF",
    "GBP": "BARCGB22",
    "CHF": "UBSWCHZH",
    "JPY": "MHCBJPJT",
}


@dataclass(frozen=True)
class SecuritySpec:
    """A security of the demo book. ``price`` is a decimal string; bonds are quoted in % of nominal."""

    isin: str
    name: str
    ticker: str | None
    asset_class: AssetClass
    currency: str
    mic: str
    price: str
    real: bool = True
    maturity: dt.date | None = None  # bonds: not traded once matured
    liquidity: Liquidity | None = None  # None: derived from the asset class


E, F, G, C = AssetClass.EQUITY, AssetClass.ETF, AssetClass.GOVT_BOND, AssetClass.CORP_BOND

REAL_SECURITIES: tuple[SecuritySpec, ...] = (
    # United States (T+1 at DTC)
    SecuritySpec("US0378331005", "Apple Inc.", "AAPL", E, "USD", "XNAS", "229.50"),
    SecuritySpec("US5949181045", "Microsoft Corp.", "MSFT", E, "USD", "XNAS", "425.20"),
    SecuritySpec("US0231351067", "Amazon.com Inc.", "AMZN", E, "USD", "XNAS", "201.30"),
    SecuritySpec("US02079K3059", "Alphabet Inc. Class A", "GOOGL", E, "USD", "XNAS", "178.40"),
    SecuritySpec("US67066G1040", "NVIDIA Corp.", "NVDA", E, "USD", "XNAS", "138.25"),
    SecuritySpec("US30303M1027", "Meta Platforms Inc. Class A", "META", E, "USD", "XNAS", "585.10"),
    SecuritySpec("US88160R1014", "Tesla Inc.", "TSLA", E, "USD", "XNAS", "320.75"),
    SecuritySpec("US46625H1005", "JPMorgan Chase & Co.", "JPM", E, "USD", "XNYS", "245.60"),
    SecuritySpec("US1912161007", "Coca-Cola Co.", "KO", E, "USD", "XNYS", "69.80"),
    SecuritySpec("US4781601046", "Johnson & Johnson", "JNJ", E, "USD", "XNYS", "156.30"),
    SecuritySpec("US30231G1022", "Exxon Mobil Corp.", "XOM", E, "USD", "XNYS", "112.40"),
    SecuritySpec("US0846707026", "Berkshire Hathaway Inc. Class B", "BRK.B", E, "USD", "XNYS", "472.90"),
    SecuritySpec("US92826C8394", "Visa Inc. Class A", "V", E, "USD", "XNYS", "331.20"),
    SecuritySpec("US78462F1030", "SPDR S&P 500 ETF Trust", "SPY", F, "USD", "ARCX", "590.40"),
    SecuritySpec("US4642872000", "iShares Core S&P 500 ETF", "IVV", F, "USD", "ARCX", "593.10"),
    SecuritySpec("US46090E1038", "Invesco QQQ Trust Series 1", "QQQ", F, "USD", "XNAS", "512.80"),
    # Germany (Xetra, Clearstream Banking Frankfurt)
    SecuritySpec("DE0007164600", "SAP SE", "SAP", E, "EUR", "XETR", "241.50"),
    SecuritySpec("DE0007236101", "Siemens AG", "SIE", E, "EUR", "XETR", "205.30"),
    SecuritySpec("DE0008404005", "Allianz SE", "ALV", E, "EUR", "XETR", "332.10"),
    SecuritySpec("DE0005557508", "Deutsche Telekom AG", "DTE", E, "EUR", "XETR", "32.15"),
    SecuritySpec("DE000BASF111", "BASF SE", "BAS", E, "EUR", "XETR", "45.62"),
    SecuritySpec("DE0007100000", "Mercedes-Benz Group AG", "MBG", E, "EUR", "XETR", "56.40"),
    SecuritySpec("DE0005933931", "iShares Core DAX UCITS ETF (DE)", "EXS1", F, "EUR", "XETR", "182.30"),
    SecuritySpec(
        "IE00B4L5Y983", "iShares Core MSCI World UCITS ETF USD (Acc)", "EUNL", F, "EUR", "XETR", "104.20"
    ),
    SecuritySpec(
        "IE00BK5BQT80", "Vanguard FTSE All-World UCITS ETF (USD) Acc", "VWCE", F, "EUR", "XETR", "132.60"
    ),
    # Netherlands (Euronext Amsterdam, Euroclear Nederland)
    SecuritySpec("NL0010273215", "ASML Holding N.V.", "ASML", E, "EUR", "XAMS", "655.40"),
    SecuritySpec("NL0000009165", "Heineken N.V.", "HEIA", E, "EUR", "XAMS", "76.50"),
    SecuritySpec("NL0011821202", "ING Groep N.V.", "INGA", E, "EUR", "XAMS", "17.25"),
    SecuritySpec("NL0012969182", "Adyen N.V.", "ADYEN", E, "EUR", "XAMS", "1432.00"),
    # France (Euronext Paris, Euroclear France); Airbus is a Dutch company listed in Paris.
    SecuritySpec("FR0000120271", "TotalEnergies SE", "TTE", E, "EUR", "XPAR", "55.30"),
    SecuritySpec("FR0000121014", "LVMH Moet Hennessy Louis Vuitton SE", "MC", E, "EUR", "XPAR", "612.40"),
    SecuritySpec("NL0000235190", "Airbus SE", "AIR", E, "EUR", "XPAR", "168.20"),
    SecuritySpec("FR0000120321", "L'Oreal SA", "OR", E, "EUR", "XPAR", "338.50"),
    SecuritySpec("FR0000131104", "BNP Paribas SA", "BNP", E, "EUR", "XPAR", "66.10"),
    SecuritySpec("FR0000120578", "Sanofi SA", "SAN", E, "EUR", "XPAR", "91.40"),
    # United Kingdom (LSE, CREST). The LSE quotes in pence; the book keeps GBP so amounts are in an ISO currency.
    SecuritySpec("GB0005405286", "HSBC Holdings plc", "HSBA", E, "GBP", "XLON", "9.054"),
    SecuritySpec("GB0007980591", "BP plc", "BP.", E, "GBP", "XLON", "3.912"),
    SecuritySpec("GB0009895292", "AstraZeneca plc", "AZN", E, "GBP", "XLON", "108.62"),
    SecuritySpec("GB00BP6MXD84", "Shell plc", "SHEL", E, "GBP", "XLON", "26.415"),
    SecuritySpec("GB00BN7SWP63", "GSK plc", "GSK", E, "GBP", "XLON", "14.205"),
    SecuritySpec("GB00BH4HKS39", "Vodafone Group plc", "VOD", E, "GBP", "XLON", "0.7124"),
    SecuritySpec("GB0031348658", "Barclays plc", "BARC", E, "GBP", "XLON", "2.953"),
    SecuritySpec("GB0007188757", "Rio Tinto plc", "RIO", E, "GBP", "XLON", "47.85"),
    SecuritySpec(
        "IE0005042456", "iShares Core FTSE 100 UCITS ETF GBP (Dist)", "ISF", F, "GBP", "XLON", "8.412"
    ),
    # Switzerland (SIX Swiss Exchange, SIX SIS)
    SecuritySpec("CH0038863350", "Nestle S.A.", "NESN", E, "CHF", "XSWX", "79.84"),
    SecuritySpec("CH0012005267", "Novartis AG", "NOVN", E, "CHF", "XSWX", "95.12"),
    SecuritySpec("CH0012032048", "Roche Holding AG (Genussschein)", "ROG", E, "CHF", "XSWX", "262.40"),
    SecuritySpec("CH0244767585", "UBS Group AG", "UBSG", E, "CHF", "XSWX", "28.46"),
    # Japan (Tokyo Stock Exchange, JASDEC), traded in units of 100 shares
    SecuritySpec("JP3633400001", "Toyota Motor Corp.", "7203", E, "JPY", "XTKS", "2795"),
    SecuritySpec("JP3435000009", "Sony Group Corp.", "6758", E, "JPY", "XTKS", "3520"),
    # Government bonds (real issues), priced in % of nominal
    SecuritySpec(
        "DE0001102556",
        "Bundesrepublik Deutschland 0.00% 15/11/2028",
        "DBR 0 11/28",
        G,
        "EUR",
        "XFRA",
        "95.880",
        maturity=dt.date(2028, 11, 15),
    ),
    SecuritySpec(
        "DE0001102622",
        "Bundesrepublik Deutschland 2.10% 15/11/2029",
        "DBR 2.1 11/29",
        G,
        "EUR",
        "XFRA",
        "99.950",
        maturity=dt.date(2029, 11, 15),
    ),
    SecuritySpec(
        "DE0001102606",
        "Bundesrepublik Deutschland 1.70% 15/08/2032",
        "DBR 1.7 08/32",
        G,
        "EUR",
        "XFRA",
        "95.120",
        maturity=dt.date(2032, 8, 15),
    ),
    SecuritySpec(
        "DE000BU2Z023",
        "Bundesrepublik Deutschland 2.20% 15/02/2034",
        "DBR 2.2 02/34",
        G,
        "EUR",
        "XFRA",
        "97.090",
        maturity=dt.date(2034, 2, 15),
    ),
    SecuritySpec(
        "DE000BU2Z031",
        "Bundesrepublik Deutschland 2.60% 15/08/2034",
        "DBR 2.6 08/34",
        G,
        "EUR",
        "XFRA",
        "100.450",
        maturity=dt.date(2034, 8, 15),
    ),
    SecuritySpec(
        "DE0001102598",
        "Bundesrepublik Deutschland 1.00% 15/05/2038",
        "DBR 1 05/38",
        G,
        "EUR",
        "XFRA",
        "80.450",
        maturity=dt.date(2038, 5, 15),
    ),
    SecuritySpec(
        "DE0001102572",
        "Bundesrepublik Deutschland 0.00% 15/08/2052",
        "DBR 0 08/52",
        G,
        "EUR",
        "XFRA",
        "48.300",
        maturity=dt.date(2052, 8, 15),
    ),
    SecuritySpec(
        "GB00BPSNBF73",
        "United Kingdom Gilt 4% 22/10/2031",
        "UKT 4 10/31",
        G,
        "GBP",
        "XLON",
        "99.900",
        maturity=dt.date(2031, 10, 22),
    ),
    SecuritySpec(
        "GB0004893086",
        "United Kingdom Gilt 4 1/4% 07/06/2032",
        "UKT 4.25 06/32",
        G,
        "GBP",
        "XLON",
        "100.810",
        maturity=dt.date(2032, 6, 7),
    ),
    SecuritySpec(
        "GB00BQC82C90",
        "United Kingdom Gilt 4 1/4% 31/07/2034",
        "UKT 4.25 07/34",
        G,
        "GBP",
        "XLON",
        "99.600",
        maturity=dt.date(2034, 7, 31),
    ),
)

# The issue's named examples; the tests check each is present on its market.
NAMED_REAL = {
    "US0378331005": "XNAS",  # Apple
    "US5949181045": "XNAS",  # Microsoft
    "DE0007164600": "XETR",  # SAP
    "NL0010273215": "XAMS",  # ASML
    "GB0005405286": "XLON",  # HSBC
}


@dataclass(frozen=True)
class FutureSpec:
    root: str
    name: str
    currency: str
    price: str
    contract_size: int  # currency per index point, or nominal / 100 for bond futures


EUREX_FUTURES: tuple[FutureSpec, ...] = (
    FutureSpec("FDAX", "DAX Futures", "EUR", "23480.0", 25),
    FutureSpec("FESX", "EURO STOXX 50 Index Futures", "EUR", "5412", 10),
    FutureSpec("FGBL", "Euro-Bund Futures", "EUR", "129.54", 1000),
    FutureSpec("FGBM", "Euro-Bobl Futures", "EUR", "117.82", 1000),
    FutureSpec("FGBS", "Euro-Schatz Futures", "EUR", "106.905", 1000),
    FutureSpec("FSMI", "SMI Futures", "CHF", "12310", 10),
)

# Synthetic equities per market: how many, and the legal-form suffixes used there.
SYNTHETIC_EQUITIES = {
    "XNAS": (30, ("Inc.", "Corp.", "Holdings Inc.")),
    "XNYS": (30, ("Inc.", "Corp.", "Co.")),
    "XETR": (20, ("AG", "SE")),
    "XAMS": (12, ("N.V.",)),
    "XPAR": (18, ("SA", "SE")),
    "XLON": (24, ("plc",)),
    "XSWX": (10, ("AG", "SA")),
    "XTKS": (14, ("Corp.", "Co., Ltd.")),
}
SYNTHETIC_ETFS = {"ARCX": 6, "XETR": 5, "XLON": 4, "XAMS": 2}

NAME_HEADS = (
    "Aster",
    "Boreal",
    "Cobalt",
    "Dunmore",
    "Elmstead",
    "Fairhaven",
    "Glenrock",
    "Halcyon",
    "Ivory",
    "Juniper",
    "Kestrel",
    "Lowther",
    "Marlow",
    "Norland",
    "Orchard",
    "Pellham",
    "Quarry",
    "Ravensworth",
    "Solent",
    "Thornbury",
    "Umber",
    "Valemont",
    "Westmere",
    "Yarrow",
    "Zenith",
    "Alder",
    "Brightwater",
    "Castellan",
    "Driftwood",
    "Everton",
    "Foxglove",
    "Greyfriars",
    "Highcliff",
    "Inverness",
    "Jasper",
    "Kingfisher",
    "Larkspur",
    "Moorgate",
    "Nettlebed",
    "Oakridge",
    "Penrose",
    "Redwater",
    "Silverdale",
    "Tamarind",
    "Vantor",
    "Wexford",
    "Amberly",
    "Blythe",
    "Corvin",
)
NAME_TAILS = (
    "Industries",
    "Pharma",
    "Logistics",
    "Energy",
    "Systems",
    "Materials",
    "Foods",
    "Semiconductors",
    "Networks",
    "Insurance",
    "Bank",
    "Motors",
    "Retail",
    "Chemicals",
    "Robotics",
    "Utilities",
    "Media",
    "Biotech",
    "Aerospace",
    "Software",
    "Mining",
    "Telecom",
    "Healthcare",
    "Shipping",
)
ETF_INDICES = (
    "MSCI Europe",
    "S&P 500 Equal Weight",
    "Euro Corporate Bond",
    "Global Clean Energy",
    "MSCI Emerging Markets",
    "FTSE 250",
    "US Treasury 1-3y",
    "MSCI World Quality",
    "STOXX Europe 600 Banks",
    "Nasdaq-100",
    "Global Aggregate Bond",
    "MSCI Japan",
    "Euro Government Bond 7-10y",
    "Dow Jones Global Titans",
    "MSCI USA Small Cap",
    "Gold Miners",
    "Global Infrastructure",
)
ETF_SPONSORS = ("Northgate", "Lumen", "Quaystone", "Arbor", "Crestline")
BOND_ISSUERS = (
    "Volkner Automotive Finance B.V.",
    "Rhenania Energie AG",
    "Castellan Telecom SA",
    "Norland Utilities plc",
    "Brightwater Pharma Finance Ltd",
    "Halcyon Real Estate SE",
    "Kestrel Airlines Group SA",
    "Moorgate Bank plc",
    "Solent Infrastructure Ltd",
    "Vantor Chemicals AG",
    "Orchard Foods Finance B.V.",
    "Redwater Shipping ASA",
)
US_BOND_ISSUERS = (
    "Fairhaven Health Corp.",
    "Westmere Capital Corp.",
    "Thornbury Rail Co.",
    "Glenrock Energy Inc.",
    "Marlow Financial Corp.",
    "Elmstead Media Inc.",
)

# Counterparties: (name, country). Synthetic brokers; codes, BICs and LEIs are derived from them.
COUNTERPARTIES: tuple[tuple[str, str], ...] = (
    ("Northbridge Securities LLC", "US"),
    ("Halvorsen Kline & Co. LLC", "US"),
    ("Granite Harbor Capital Markets LLC", "US"),
    ("Meridian Crest Securities LLC", "US"),
    ("Blackwater Ridge Brokerage Inc.", "US"),
    ("Pinecrest Clearing Corp.", "US"),
    ("Ashford Lane Markets LLC", "US"),
    ("Summit Hollow Trading LLC", "US"),
    ("Calder & Rowe Securities Inc.", "US"),
    ("Ironvale Partners LLC", "US"),
    ("Westbrook Prime Services LLC", "US"),
    ("Redfield Execution Services LLC", "US"),
    ("Harborview Futures LLC", "US"),
    ("Eastgate Fixed Income LLC", "US"),
    ("Bayport Treasury Securities LLC", "US"),
    ("Thamesgate Securities Ltd", "GB"),
    ("Abbotsford Markets plc", "GB"),
    ("Kingsmere Capital Ltd", "GB"),
    ("Wrenfield Brokers Ltd", "GB"),
    ("Holloway Street Securities LLP", "GB"),
    ("Carrow & Finch Ltd", "GB"),
    ("St Albury Markets Ltd", "GB"),
    ("Rheinufer Wertpapierhandelsbank AG", "DE"),
    ("Hanseatic Kontor Securities GmbH", "DE"),
    ("Mainzer Boersenmakler AG", "DE"),
    ("Elbstrand Capital Markets AG", "DE"),
    ("Taunusblick Bank AG", "DE"),
    ("Banque Delorme & Associes SA", "FR"),
    ("Saint-Honore Valeurs SA", "FR"),
    ("Lumiere Courtage SA", "FR"),
    ("Garonne Marches SA", "FR"),
    ("Keizersgracht Effecten N.V.", "NL"),
    ("Zuidas Markets B.V.", "NL"),
    ("Amstelveld Securities B.V.", "NL"),
    ("Limmat Privatbank AG", "CH"),
    ("Rigiblick Wertschriften AG", "CH"),
    ("Leman Capital SA", "CH"),
    ("Sakura Bridge Securities Co., Ltd.", "JP"),
    ("Marunouchi Global Markets Ltd.", "JP"),
    ("Nihonbashi Kabuto Securities Co., Ltd.", "JP"),
    ("Moselle Custody S.A.", "LU"),
    ("Kirchberg Capital S.A.", "LU"),
    ("Liffey Markets DAC", "IE"),
    ("Dalkey Securities DAC", "IE"),
    ("Sablon Securities NV", "BE"),
    ("Brera Intermediazione SpA", "IT"),
    ("Navigli Mercati SpA", "IT"),
    ("Castellana Valores SV SA", "ES"),
    ("Retiro Mercados SA", "ES"),
    ("Skeppsholmen Fondkommission AB", "SE"),
)

# BIC location codes that look right for each country.
BIC_LOCATIONS = {
    "US": "33",
    "GB": "2L",
    "DE": "FF",
    "FR": "PP",
    "NL": "2A",
    "CH": "ZZ",
    "JP": "JT",
    "LU": "LL",
    "IE": "2D",
    "BE": "BB",
    "IT": "MM",
    "ES": "MM",
    "SE": "SS",
}
# Prefixes of real LEI-issuing organisations (LOUs) by country; the entity part of each demo LEI is random.
LEI_PREFIXES = {
    "US": "5493",
    "GB": "2138",
    "DE": "5299",
    "FR": "9695",
    "NL": "7245",
    "LU": "2221",
    "IE": "6354",
}
DEFAULT_LEI_PREFIX = "8156"


@dataclass(frozen=True)
class AccountSpec:
    code: str
    name: str
    account_type: str  # CLIENT or HOUSE
    kyc: KycStatus
    segregation: Segregation
    base_currency: str
    has_lei: bool
    weight: float  # share of the trade flow
    futures: bool  # may trade futures


A = KycStatus.APPROVED
# fmt: off
ACCOUNTS: tuple[AccountSpec, ...] = (
    #           code          name                                        type       KYC                  segregation              base   LEI    flow  futures
    AccountSpec("HOUSE-EQ",   "Principal Equities Book",                "HOUSE",   A,                   Segregation.HOUSE,       "USD", True,   9.0, False),
    AccountSpec("HOUSE-FI",   "Principal Fixed Income Book",            "HOUSE",   A,                   Segregation.HOUSE,       "EUR", True,   6.0, False),
    AccountSpec("HOUSE-FUT",  "Futures Proprietary Book",               "HOUSE",   A,                   Segregation.HOUSE,       "EUR", True,   3.0, True),
    AccountSpec("HOUSE-FAC",  "Client Facilitation Book",               "HOUSE",   A,                   Segregation.HOUSE,       "USD", True,   4.0, False),
    AccountSpec("C-HVPF",     "Harbour View Pension Fund",              "CLIENT",  A,                   Segregation.SEGREGATED,  "GBP", True,   6.0, False),
    AccountSpec("C-ASAM",     "Alder Street Asset Management",          "CLIENT",  A,                   Segregation.OMNIBUS,     "USD", True,   7.0, True),
    AccountSpec("C-CHEN",     "Cedar Hill Endowment",                   "CLIENT",  A,                   Segregation.SEGREGATED,  "USD", True,   3.0, False),
    AccountSpec("C-FFO",      "Fenwick Family Office",                  "CLIENT",  A,                   Segregation.SEGREGATED,  "CHF", False,  1.5, False),
    AccountSpec("C-GINS",     "Glenmore Insurance plc",                 "CLIENT",  A,                   Segregation.SEGREGATED,  "GBP", True,   4.0, False),
    AccountSpec("C-KGMF",     "Kestrel Global Macro Fund",              "CLIENT",  A,                   Segregation.SEGREGATED,  "USD", True,   6.0, True),
    AccountSpec("C-LPC",      "Lindqvist Private Client",               "CLIENT",  A,                   Segregation.SEGREGATED,  "EUR", False,  1.0, False),
    AccountSpec("C-MHLD",     "Marchetti Holdings",                     "CLIENT",  A,                   Segregation.SEGREGATED,  "EUR", True,   1.5, False),
    AccountSpec("C-NLIF",     "Northern Lights Income Fund",            "CLIENT",  A,                   Segregation.SEGREGATED,  "USD", True,   4.0, False),
    AccountSpec("C-OUE",      "Oakhurst University Endowment",          "CLIENT",  A,                   Segregation.SEGREGATED,  "USD", True,   2.5, False),
    AccountSpec("C-PCP",      "Pelham Capital Partners",                "CLIENT",  A,                   Segregation.SEGREGATED,  "USD", True,   4.5, True),
    AccountSpec("C-QMAF",     "Quayside Multi-Asset Fund",              "CLIENT",  A,                   Segregation.OMNIBUS,     "EUR", True,   5.0, True),
    AccountSpec("C-RCT",      "Rosewood Charitable Trust",              "CLIENT",  A,                   Segregation.SEGREGATED,  "GBP", True,   1.5, False),
    AccountSpec("C-SGF",      "Saltmarsh Growth Fund",                  "CLIENT",  A,                   Segregation.SEGREGATED,  "EUR", True,   4.0, False),
    AccountSpec("C-TWM",      "Tavistock Wealth Management Omnibus",    "CLIENT",  A,                   Segregation.OMNIBUS,     "GBP", True,   4.0, False),
    AccountSpec("C-VSF",      "Vireo Sovereign Fund",                   "CLIENT",  A,                   Segregation.SEGREGATED,  "USD", True,   5.0, True),
    AccountSpec("C-WPO",      "Whitcombe Private Office",               "CLIENT",  A,                   Segregation.SEGREGATED,  "CHF", False,  1.0, False),
    AccountSpec("C-YEEF",     "Yarrow Ethical Equity Fund",             "CLIENT",  A,                   Segregation.SEGREGATED,  "EUR", True,   3.0, False),
    AccountSpec("C-ZHP",      "Zephyr Hedge Partners",                  "CLIENT",  A,                   Segregation.SEGREGATED,  "USD", True,   5.0, True),
    AccountSpec("C-BTC",      "Bellamy Trust Company",                  "CLIENT",  A,                   Segregation.OMNIBUS,     "USD", True,   2.0, False),
    AccountSpec("C-DRP",      "Drummond Retirement Plan",               "CLIENT",  A,                   Segregation.SEGREGATED,  "USD", True,   2.5, False),
    AccountSpec("C-EBF",      "Everly Balanced Fund",                   "CLIENT",  A,                   Segregation.SEGREGATED,  "EUR", True,   2.5, False),
    # A few accounts whose KYC is not approved: their trades wait in repair.
    AccountSpec("C-HIH",      "Hawthorne Insurance Holdings",           "CLIENT",  KycStatus.PENDING,   Segregation.SEGREGATED,  "GBP", True,   0.4, False),
    AccountSpec("C-ICO",      "Irongate Credit Opportunities",          "CLIENT",  KycStatus.PENDING,   Segregation.SEGREGATED,  "USD", True,   0.4, False),
    AccountSpec("C-JPCO",     "Juniper Private Client Omnibus",         "CLIENT",  KycStatus.EXPIRED,   Segregation.OMNIBUS,     "EUR", True,   0.4, False),
    AccountSpec("C-OMRF",     "Olmsted Mariner Fund",                   "CLIENT",  KycStatus.EXPIRED,   Segregation.SEGREGATED,  "USD", True,   0.3, False),
    AccountSpec("C-PXV",      "Praxis Venture Vehicle",                 "CLIENT",  KycStatus.REJECTED,  Segregation.SEGREGATED,  "USD", True,   0.2, False),
)
# fmt: on

# The demo users (README): two clerks, two supervisors (four-eyes needs two), an admin and an auditor.
DEMO_USERS: tuple[tuple[str, Role, str, str], ...] = (
    ("clerk1", Role.CLERK, "Chris Clerk", "Europe/London"),
    ("clerk2", Role.CLERK, "Kim Clerk", "America/New_York"),
    ("supervisor", Role.SUPERVISOR, "Sam Supervisor", "Europe/London"),
    ("supervisor2", Role.SUPERVISOR, "Sasha Supervisor", "Europe/London"),
    ("admin", Role.ADMIN, "Ada Admin", "Europe/London"),
    ("auditor", Role.AUDITOR, "Alex Auditor", "Europe/London"),
)

# Reason codes of the demo's trades in repair, with the field at fault: trade capture's codes
# (capture.validation.REASONS), so the repair queue, its filters and re-validation treat demo trades like imported ones.
REPAIR_CODES = {
    "ISIN_CHECK": "isin",
    "ISIN_UNKNOWN": "isin",
    "CPTY_UNKNOWN": "counterparty_code",
    "PRICE_TOLERANCE": "price",
    "SSI_MISSING": "their_ssi",
    "KYC_NOT_APPROVED": "account_code",
}

# MT548 / sese.024 reason codes used on unmatched, pending and failed instructions, with a clerk-readable text.
REASON_TEXTS = {
    "CMIS": "Unmatched: no counterparty instruction received (CMIS)",
    "DDAT": "Unmatched: settlement date differs from the counterparty's (DDAT)",
    "DQUA": "Unmatched: quantity differs from the counterparty's (DQUA)",
    "DMON": "Unmatched: settlement amount differs beyond tolerance (DMON)",
    "DEPT": "Unmatched: place of settlement differs (DEPT)",
    "LACK": "Pending: lack of securities at the delivering party (LACK)",
    "MONY": "Pending: insufficient cash at the receiving party (MONY)",
}
