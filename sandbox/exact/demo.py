"""Default demo data: one user per region (three divisions in NL), each division populated.

Ids are deterministic (uuid5 of division + kind + code), so tests and docs can name them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from . import schema
from .odata import date_to_ms, pad_left, pad_right
from .state import REGIONS, Division, ExactState, User, demo_guid

#: (division code, region, description, main, VAT number).
DIVISIONS = (
    (3010001, "nl", "Ledgerlink Demo B.V.", True, "NL859622155B01"),
    (3010002, "nl", "Ledgerlink Services B.V.", False, "NL004495445B01"),
    # The user sees this one but lacks rights in it (managed by the accountant): not grantable.
    (3010003, "nl", "Holding De Vries (accountant)", False, "NL853746333B01"),
    (3020001, "be", "Ledgerlink Belgium BV", True, "BE0403170701"),
    (3030001, "de", "Ledgerlink Deutschland GmbH", True, "DE136695976"),
    (3040001, "uk", "Ledgerlink UK Ltd", True, "GB980780684"),
    (3050001, "us", "Ledgerlink Inc.", True, None),
    (3060001, "es", "Ledgerlink España S.L.", True, "ESB12345674"),
    (3070001, "fr", "Ledgerlink France SAS", True, "FR40303265045"),
    # A second division per region, so re-authorizing onto another division can be tried anywhere.
    (3020002, "be", "Ledgerlink Belgium Services BV", False, None),
    (3030002, "de", "Ledgerlink Services GmbH", False, None),
    (3040002, "uk", "Ledgerlink Services Ltd", False, None),
    (3050002, "us", "Ledgerlink Services LLC", False, None),
    (3060002, "es", "Ledgerlink Servicios S.L.", False, None),
    (3070002, "fr", "Ledgerlink Services SARL", False, None),
)

#: (username, region, first, last, divisions seen, divisions with rights).
USERS = (
    ("jan.devries", "nl", "Jan", "de Vries", [3010001, 3010002, 3010003], {3010001, 3010002}),
    ("lotte.peeters", "be", "Lotte", "Peeters", [3020001, 3020002], {3020001, 3020002}),
    ("anna.schmidt", "de", "Anna", "Schmidt", [3030001, 3030002], {3030001, 3030002}),
    ("oliver.smith", "uk", "Oliver", "Smith", [3040001, 3040002], {3040001, 3040002}),
    ("emily.johnson", "us", "Emily", "Johnson", [3050001, 3050002], {3050001, 3050002}),
    ("lucia.garcia", "es", "Lucía", "García", [3060001, 3060002], {3060001, 3060002}),
    ("camille.martin", "fr", "Camille", "Martin", [3070001, 3070002], {3070001, 3070002}),
)

#: VAT codes per country: (code, description nl/en, percentage fraction, type).
VAT_CODES = {
    # The standard rate last (the default of revenue accounts), a reduced one at index 1 (items use it).
    "NL": (
        ("0", "0% btw", 0.0, "B"),
        ("1", "9% btw laag", 0.09, "E"),
        ("3", "0% btw verlegd (reverse charge)", 0.0, "B"),
        ("5", "Vrijgesteld van btw (exempt)", 0.0, "N"),
        ("6", "0% export buiten EU", 0.0, "B"),
        ("2", "21% btw hoog", 0.21, "E"),
    ),
    "BE": (
        ("0", "0% btw", 0.0, "B"),
        ("1", "6% btw", 0.06, "E"),
        ("2", "12% btw", 0.12, "E"),
        ("4", "0% medecontractant (reverse charge)", 0.0, "B"),
        ("3", "21% btw", 0.21, "E"),
    ),
    "DE": (
        ("0", "0% USt", 0.0, "B"),
        ("7", "7% USt", 0.07, "E"),
        ("13", "0% Reverse Charge 13b", 0.0, "B"),
        ("19", "19% USt", 0.19, "E"),
    ),
    "GB": (
        ("0", "Zero rated 0%", 0.0, "B"),
        ("5", "Reduced rate 5%", 0.05, "E"),
        ("E", "Exempt", 0.0, "N"),
        ("20", "Standard 20%", 0.2, "E"),
    ),
    "US": (("0", "Exempt", 0.0, "N"), ("TX", "Sales tax 8.25%", 0.0825, "E")),
    "ES": (
        ("0", "IVA 0%", 0.0, "B"),
        ("10", "IVA reducido 10%", 0.1, "E"),
        ("21", "IVA general 21%", 0.21, "E"),
    ),
    "FR": (("0", "TVA 0%", 0.0, "B"), ("10", "TVA 10%", 0.1, "E"), ("20", "TVA 20%", 0.2, "E")),
}

#: (code, description, type, balance type) — 110 revenue, 20 receivable, 24 VAT, 10 cash, 12 bank
#: (exact-online.md §3.4).
GL_ACCOUNTS = (
    ("1000", "Kas", 10, "B"),
    ("1100", "Bank", 12, "B"),
    ("1300", "Debiteuren", 20, "B"),
    ("1500", "Af te dragen BTW hoog tarief", 24, "B"),
    ("8000", "Omzet", 110, "W"),
    ("8010", "Omzet diensten", 110, "W"),
    ("4406", "Overige kosten", 120, "W"),
)

#: (code, description, type) — 20 sales, 12 bank (exact-online.md §3.5).
JOURNALS = (
    ("70", "Verkoopboek", 20),
    ("71", "Verkoopboek export", 20),
    ("90", "Memoriaal", 90),
    ("10", "Kas", 10),
    ("20", "Bank", 12),
)

#: (code, description, days, method).
PAYMENT_CONDITIONS = (("14", "14 dagen", 14, "B"), ("21", "21 dagen", 21, "B"), ("30", "30 dagen", 30, "B"))

#: (code, description, price, unit, vat index into VAT_CODES, gl code).
ITEMS = (
    ("CONSULT", "Consultancy per uur", 95.0, "uur", -1, "8010"),
    ("LIC-STD", "Licentie standaard", 49.0, "stuk", -1, "8000"),
    ("      10", "Installatie (padded code)", 150.0, "stuk", -1, "8010"),
    ("BOOK", "Handboek", 25.0, "stuk", 1, "8000"),
)

#: Customers: (code, name, email, VAT number, chamber of commerce, city) — some messy on purpose.
CUSTOMERS = (
    ("1", "Bakkerij Jansen B.V.", "info@bakkerijjansen.example", "NL001234567B01", "12345678", "Utrecht"),
    (
        "2",
        "  de Groot  Installatietechniek ",
        "FACTUREN@DEGROOT.EXAMPLE ",
        "nl 0012.34.568.b02",
        " 87654321",
        "Zwolle",
    ),
    ("3", "Acme Trading", None, None, None, "Amsterdam"),
)


def load(state: ExactState, now: datetime) -> None:
    """Replace ``state`` with the default demo users and divisions."""
    state.clear()
    now_ms = int(now.timestamp() * 1000)
    for code, region, description, main, vat in DIVISIONS:
        reg = REGIONS[region]
        division = Division(
            code=code,
            region=region,
            description=description,
            country=reg.country,
            currency=reg.currency,
            vat_number=vat,
            main=main,
            created_ms=date_to_ms(date(now.year - 3, 1, 1)),
        )
        _populate(division, now, now_ms)
        state.divisions[code] = division
    for username, region, first, last, divisions, rights in USERS:
        user = User(
            id=demo_guid("user", username),
            region=region,
            username=username,
            first_name=first,
            last_name=last,
            email=f"{username}@ledgerlink.example",
            language="",
            divisions=list(divisions),
            rights=set(rights),
            current_division=divisions[0],
        )
        state.users[user.id] = user


def _populate(div: Division, now: datetime, now_ms: int) -> None:
    lang_nl = div.region in ("nl", "be")
    vat_ids: dict[str, str] = {}
    vat_rows = VAT_CODES[div.country]
    for code, description, pct, kind in vat_rows:
        rec = schema.VATCODE.blank()
        rec.update(
            ID=demo_guid(div.code, "vat", code),
            Code=pad_right(code, 3),
            Description=description,
            Percentage=pct,
            Type=kind,
            VATTransactionType="B",
            Charged=False,
        )
        div.insert(schema.VATCODE, rec, now_ms, code_field="Code")
        vat_ids[code] = rec["Code"]
    default_vat = pad_right(vat_rows[-1][0], 3)
    gl_ids: dict[str, str] = {}
    for code, description, kind, balance in GL_ACCOUNTS:
        rec = schema.GLACCOUNT.blank()
        rec.update(
            ID=demo_guid(div.code, "gl", code),
            Code=code,
            Description=description if lang_nl else _english_gl(code, description),
            Type=kind,
            TypeDescription={
                10: "Kas",
                12: "Bank",
                20: "Debiteuren",
                24: "BTW",
                110: "Opbrengsten",
                120: "Overige kosten",
            }[kind],
            BalanceType=balance,
            BalanceSide="C" if kind == 110 else "D",
            SearchCode=pad_right(description.split()[0].upper()[:9], 9),
            VATCode=default_vat if kind == 110 else None,
        )
        div.insert(schema.GLACCOUNT, rec, now_ms, code_field="Code")
        gl_ids[code] = rec["ID"]
    for code, description, kind in JOURNALS:
        rec = schema.JOURNAL.blank()
        rec.update(
            ID=demo_guid(div.code, "journal", code),
            Code=code,
            Description=description
            if lang_nl
            else {20: "Sales journal", 90: "General journal", 10: "Cash", 12: "Bank"}[kind],
            Type=kind,
            TypeDescription={20: "Verkoop", 90: "Memoriaal", 10: "Kas", 12: "Bank"}[kind],
            Currency=div.currency,
            GLAccount={20: gl_ids["1300"], 12: gl_ids["1100"]}.get(kind, gl_ids["1000"]),
        )
        div.insert(schema.JOURNAL, rec, now_ms, code_field="Code")
    for code, description, days, method in PAYMENT_CONDITIONS:
        rec = schema.PAYMENTCONDITION.blank()
        rec.update(
            ID=demo_guid(div.code, "paycond", code),
            Code=code,
            Description=description if lang_nl else f"{days} days",
            PaymentDays=days,
            PaymentMethod=method,
        )
        div.insert(schema.PAYMENTCONDITION, rec, now_ms, code_field="Code")
    for code, description, price, unit, vat_index, gl in ITEMS:
        vat_code = pad_right(vat_rows[vat_index if vat_index < len(vat_rows) else -1][0], 3)
        rec = schema.ITEM.blank()
        rec.update(
            ID=demo_guid(div.code, "item", code.strip()),
            Code=code,
            Description=description,
            IsSalesItem=True,
            IsStockItem=False,
            SalesVatCode=vat_code,
            SalesVatCodeDescription=div.by_code("VATCodes", vat_code)["Description"],
            Unit=pad_right(unit, 8),
            UnitDescription=unit,
            UnitType="O",
            GLRevenue=gl_ids[gl],
            GLRevenueCode=gl,
            GLRevenueDescription=div.by_code("GLAccounts", gl)["Description"],
            CostPriceCurrency=div.currency,
            StartDate=date_to_ms(date(now.year - 3, 1, 1)),
        )
        div.insert(schema.ITEM, rec, now_ms, code_field="Code")
        div.prices[rec["ID"]] = price
    for code, name, email, vat, coc, city in CUSTOMERS:
        rec = schema.ACCOUNT.blank()
        rec.update(
            ID=demo_guid(div.code, "account", code),
            Code=pad_left(code, 18),
            Name=name,
            Email=email,
            VATNumber=vat,
            ChamberOfCommerce=coc,
            City=city,
            Country=pad_right(div.country, 3),
            Status="C",
            IsSales=True,
            Type="A",
            Language=("NL" if lang_nl else "EN"),
            PaymentConditionSales="14",
            PaymentConditionSalesDescription="14 dagen" if lang_nl else "14 days",
            SalesCurrency=div.currency,
            SearchCode=name.strip().split()[0].upper()[:10],
            StartDate=date_to_ms(date(now.year - 2, 1, 1)),
        )
        div.insert(schema.ACCOUNT, rec, now_ms, code_field="Code")
    for year in (now.year - 1, now.year, now.year + 1):
        for period in range(1, 13):
            start = date(year, period, 1)
            end = date(year + (period == 12), period % 12 + 1, 1)
            rec = schema.FINANCIALPERIOD.blank()
            rec.update(
                ID=demo_guid(div.code, "period", year, period),
                FinYear=year,
                FinPeriod=period,
                StartDate=date_to_ms(start),
                EndDate=date_to_ms(end) - 86_400_000,
            )
            div.insert(schema.FINANCIALPERIOD, rec, now_ms)


def _english_gl(code: str, description: str) -> str:
    return {
        "1000": "Cash",
        "1100": "Bank",
        "1300": "Accounts receivable",
        "1500": "VAT payable",
        "8000": "Revenue",
        "8010": "Revenue services",
        "4406": "Other costs",
    }.get(code, description)


def today(now_ms: int) -> date:
    """Return the UTC day of epoch milliseconds."""
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
