"""Deterministic, realistic demo data: organizations in eight countries with their billing records.

The same ``seed`` and ``anchor`` date give the same data. Records are written with bulk
inserts, a chunk of organizations per transaction, so ``--orgs 10000`` runs in minutes.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, insert, select

from ..database import utcnow
from ..extensions import db
from ..models import (
    BusinessUnit,
    CreditNote,
    CreditNoteLine,
    Customer,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Organization,
    Payment,
    PaymentMethod,
    Product,
)
from .identifiers import VAT_GENERATORS, company_number, messy

CENT = Decimal("0.01")
CHUNK = 250


class DemoSeedError(Exception):
    """Demo data that cannot be created as asked; the message says why."""


@dataclass(frozen=True)
class CountryProfile:
    """What makes a country's demo data look local."""

    code: str
    currency: str
    #: VAT / sales-tax rates in percent, the standard rate first.
    rates: tuple[str, ...]
    legal_forms: tuple[str, ...]
    names: tuple[str, ...]
    cities: tuple[tuple[str, str], ...]
    tld: str


COUNTRIES = {
    "NL": CountryProfile(
        "NL",
        "EUR",
        ("21", "9", "0"),
        ("B.V.", "BV", "V.O.F.", ""),
        (
            "Van Dijk",
            "De Boer",
            "Jansen",
            "Bakker",
            "Visser",
            "Smit",
            "Meijer",
            "Mulder",
            "Van der Berg",
            "Bos",
        ),
        (
            ("Amsterdam", "1012 AB"),
            ("Rotterdam", "3011 AD"),
            ("Utrecht", "3511 LX"),
            ("Eindhoven", "5611 EM"),
        ),
        "nl",
    ),
    "BE": CountryProfile(
        "BE",
        "EUR",
        ("21", "12", "6", "0"),
        ("BV", "NV", "SRL", "SA"),
        (
            "Peeters",
            "Janssens",
            "Maes",
            "Dubois",
            "Lambert",
            "Claes",
            "Wouters",
            "Goossens",
            "Lefèvre",
            "Mertens",
        ),
        (("Antwerpen", "2000"), ("Gent", "9000"), ("Bruxelles", "1000"), ("Liège", "4000")),
        "be",
    ),
    "DE": CountryProfile(
        "DE",
        "EUR",
        ("19", "7", "0"),
        ("GmbH", "AG", "UG (haftungsbeschränkt)", "GmbH & Co. KG"),
        (
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Schäfer",
            "Koch",
        ),
        (("Berlin", "10115"), ("München", "80331"), ("Hamburg", "20095"), ("Köln", "50667")),
        "de",
    ),
    "GB": CountryProfile(
        "GB",
        "GBP",
        ("20", "5", "0"),
        ("Ltd", "Limited", "PLC", "LLP"),
        ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Thomas", "Roberts", "O'Brien"),
        (("London", "EC1A 1BB"), ("Manchester", "M1 1AE"), ("Leeds", "LS1 4DY"), ("Bristol", "BS1 4DJ")),
        "co.uk",
    ),
    "US": CountryProfile(
        "US",
        "USD",
        ("0", "7.25", "8.25"),
        ("Inc.", "LLC", "Corp.", "Co."),
        (
            "Johnson",
            "Miller",
            "Davis",
            "Garcia",
            "Rodriguez",
            "Martinez",
            "Anderson",
            "Harris",
            "Clark",
            "Lewis",
        ),
        (
            ("New York, NY", "10001"),
            ("Austin, TX", "73301"),
            ("Denver, CO", "80202"),
            ("Seattle, WA", "98101"),
        ),
        "com",
    ),
    "ES": CountryProfile(
        "ES",
        "EUR",
        ("21", "10", "4", "0"),
        ("S.L.", "SL", "S.A.", "SLU"),
        (
            "García",
            "Fernández",
            "González",
            "Rodríguez",
            "López",
            "Martínez",
            "Sánchez",
            "Pérez",
            "Gómez",
            "Núñez",
        ),
        (("Madrid", "28001"), ("Barcelona", "08001"), ("Valencia", "46001"), ("Sevilla", "41001")),
        "es",
    ),
    "FR": CountryProfile(
        "FR",
        "EUR",
        ("20", "10", "5.5", "0"),
        ("SARL", "SAS", "SA", "EURL"),
        (
            "Martin",
            "Bernard",
            "Dubois",
            "Thomas",
            "Robert",
            "Richard",
            "Petit",
            "Durand",
            "Lefèvre",
            "Hélène",
        ),
        (("Paris", "75001"), ("Lyon", "69001"), ("Marseille", "13001"), ("Toulouse", "31000")),
        "fr",
    ),
    "CH": CountryProfile(
        "CH",
        "CHF",
        ("8.1", "2.6", "3.8", "0"),
        ("AG", "GmbH", "SA", "Sàrl"),
        ("Keller", "Meier", "Brunner", "Baumann", "Huber", "Zürcher", "Gerber", "Frei", "Moser", "Rochat"),
        (("Zürich", "8001"), ("Genève", "1201"), ("Basel", "4001"), ("Bern", "3011")),
        "ch",
    ),
}

SECTORS = (
    "Advies",
    "Consulting",
    "Engineering",
    "Logistics",
    "Design",
    "Software",
    "Media",
    "Bouw",
    "Legal",
    "Studio",
)
SAAS_SECTORS = ("Agency", "Consultancy", "Services", "Partners", "Labs", "Group", "Works", "Solutions")
PRODUCTS = (
    ("CONS-H", "Consulting hour", "125.00"),
    ("DEV-H", "Development hour", "95.00"),
    ("SUP-M", "Support subscription (month)", "49.00"),
    ("LIC-Y", "Licence (year)", "1200.00"),
    ("TRAIN-D", "Training day", "850.00"),
    ("TRAVEL", "Travel costs", "0.45"),
    ("HOST-M", "Hosting (month)", "29.95"),
    ("AUDIT", "Audit package", "2400.00"),
    ("DESIGN-H", "Design hour", "85.00"),
    ("BOOK", "Reference book", "39.50"),
)
STREETS = ("Main Street", "Hoofdstraat", "Bahnhofstrasse", "Rue de la Paix", "Calle Mayor")
FREE_MAIL = ("gmail.com", "outlook.com", "hotmail.com", "gmx.de", "orange.fr", "bluewin.ch")


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "", ascii_text.lower()) or "company"


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def seed_demo_data(orgs: int, seed: int, if_empty: bool = False, anchor: date | None = None) -> dict | None:
    """Create ``orgs`` demo organizations; return counts, or None when skipped by ``if_empty``.

    :raise DemoSeedError: when demo data of this seed exists already.
    """
    existing = db.session.scalar(select(func.count(Organization.id)))
    if existing and if_empty:
        return None
    prefix = f"demo-{seed}-"
    if db.session.scalar(select(Organization.id).where(Organization.external_id.startswith(prefix)).limit(1)):
        raise DemoSeedError(f"demo data for seed {seed} exists already; use another --seed to add more")
    anchor = anchor or date.today()
    totals: dict[str, int] = dict.fromkeys(
        ("organizations", "business_units", "customers", "products", "invoices", "credit_notes", "payments"),
        0,
    )
    for start in range(0, orgs, CHUNK):
        chunk = [_OrgBuilder(seed, i, anchor) for i in range(start, min(start + CHUNK, orgs))]
        for key, n in _write_chunk(chunk).items():
            totals[key] += n
        db.session.commit()
    return totals


class _OrgBuilder:
    """Plans one organization's records from its own random stream (independent of chunking)."""

    def __init__(self, seed: int, index: int, anchor: date) -> None:
        self.rng = random.Random(f"ledgerlink-demo:{seed}:{index}")
        self.index, self.seed, self.anchor = index, seed, anchor
        self.country = list(COUNTRIES)[index % len(COUNTRIES)]
        self.profile = COUNTRIES[self.country]

    def company_name(self, sectors=SECTORS) -> str:
        rng, p = self.rng, self.profile
        return f"{rng.choice(p.names)} {rng.choice(sectors)} {rng.choice(p.legal_forms)}".strip()

    def organization(self) -> dict:
        name = self.company_name(SAAS_SECTORS)
        return {
            "external_id": f"demo-{self.seed}-{self.index:06d}",
            "name": name,
            "country": self.country,
            "contact_email": f"admin@{_slug(name)[:30]}.{self.profile.tld}",
            "created_at": utcnow(),
        }

    def business_units(self, org_id: int, org_name: str) -> list[dict]:
        units = [{"name": org_name, "country": self.country, "currency": self.profile.currency}]
        if self.rng.random() < 0.25:  # some organizations invoice from a second entity abroad
            other = self.rng.choice([c for c in COUNTRIES if c != self.country])
            units.append(
                {
                    "name": f"{org_name.split()[0]} {other}",
                    "country": other,
                    "currency": COUNTRIES[other].currency,
                }
            )
        rows = []
        for unit in units:
            gen = VAT_GENERATORS.get(unit["country"])
            rows.append(
                {
                    **unit,
                    "organization_id": org_id,
                    "vat_number": gen(self.rng) if gen else None,
                    "created_at": utcnow(),
                }
            )
        return rows

    def customers(self, org_id: int, n: int) -> list[dict]:
        rng, rows, shared_domain = (
            self.rng,
            [],
            f"{_slug(self.rng.choice(self.profile.names))}-groep.{self.profile.tld}",
        )
        for k in range(n):
            country = self.country if rng.random() < 0.8 else rng.choice(list(COUNTRIES))
            profile = COUNTRIES[country]
            name = f"{rng.choice(profile.names)} {rng.choice(SECTORS)} {rng.choice(profile.legal_forms)}".strip()
            gen = VAT_GENERATORS.get(country)
            vat = gen(rng) if gen and rng.random() < 0.75 else None
            coc = company_number(rng, country, vat) if rng.random() < 0.45 else None
            roll = rng.random()
            if roll < 0.55:
                mailbox = rng.choice(["billing", "finance", "accounts", "admin"])
                email = f"{mailbox}@{_slug(name)[:24]}.{profile.tld}"
            elif roll < 0.65:
                email = f"{_slug(name)[:12]}@{rng.choice(FREE_MAIL)}"
            elif roll < 0.72:
                email = f"{rng.choice(['ap', 'invoices', 'office'])}.{k}@{shared_domain}"
            else:
                email = None
            city, postcode = rng.choice(profile.cities)
            rows.append(
                {
                    "organization_id": org_id,
                    "external_id": f"cus_{self.index:06d}_{k:04d}",
                    "name": name,
                    "email": email,
                    "vat_number": messy(rng, vat) if vat else None,
                    "coc_number": coc,
                    "street": f"{rng.choice(STREETS)} {rng.randint(1, 220)}",
                    "postcode": postcode,
                    "city": city,
                    "country": country,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
            )
        return rows

    def products(self, org_id: int, n: int) -> list[dict]:
        picks = self.rng.sample(PRODUCTS, n)
        return [
            {
                "organization_id": org_id,
                "external_id": f"prd_{self.index:06d}_{k:03d}",
                "code": code,
                "name": name,
                "unit_price": Decimal(price),
                "tax_rate": Decimal(self.profile.rates[0] if code not in ("BOOK", "TRAVEL") else self.profile.rates[1]),
                "active": self.rng.random() > 0.08,
                "updated_at": utcnow(),
            }
            for k, (code, name, price) in enumerate(picks)
        ]

    def lines(self, products: list[dict], rates: tuple[str, ...]) -> list[dict]:
        rows = []
        for pos in range(1, self.rng.randint(1, 4) + 1):
            product = self.rng.choice(products) if self.rng.random() < 0.85 else None
            quantity = Decimal(self.rng.choice(["1", "1", "2", "3", "5", "1.5", "8", "12.25"]))
            if product is not None:
                price, rate, text = product["unit_price"], product["tax_rate"], product["name"]
            else:
                price = Decimal(self.rng.randint(10, 900))
                rate, text = (
                    Decimal(self.rng.choice(rates)),
                    self.rng.choice(["Expenses", "Setup fee", "Discounted work"]),
                )
            net = _money(quantity * price)
            rows.append(
                {
                    "position": pos,
                    "product_id": product["id"] if product else None,
                    "description": text,
                    "quantity": quantity,
                    "unit_price": price,
                    "tax_rate": rate,
                    "net_amount": net,
                    "tax_amount": _money(net * rate / 100),
                }
            )
        return rows


def _plan_payment(b: _OrgBuilder, inv: dict) -> dict | None:
    """Decide whether ``inv`` is paid in full, in part or not at all; update it and return the payment."""
    rng = b.rng
    age = (b.anchor - inv["issue_date"]).days
    roll = rng.random()
    full, partial = (0.75, 0.85) if age > 60 else (0.4, 0.5)
    if roll >= partial:
        return None
    amount = inv["total"] if roll < full else _money(inv["total"] * Decimal(rng.choice(["0.25", "0.5", "0.6"])))
    inv["amount_paid"] = amount
    inv["status"] = InvoiceStatus.paid if amount >= inv["total"] else InvoiceStatus.partially_paid
    return {
        "organization_id": inv["organization_id"],
        "external_id": f"pay_{inv['external_id'][4:]}",
        "paid_on": min(inv["issue_date"] + timedelta(days=rng.randint(2, 45)), b.anchor),
        "amount": amount,
        "currency": inv["currency"],
        "method": rng.choice(list(PaymentMethod)),
        "reference": f"RF{rng.randint(10**9, 10**10 - 1)}",
        "created_at": utcnow(),
    }


def _plan_credit_note(b: _OrgBuilder, inv: dict, lines: list[dict]) -> tuple[dict, list[dict]] | None:
    """Decide whether ``inv`` gets a credit note (for its first line); return it with its lines."""
    rng = b.rng
    if rng.random() >= 0.07 or not lines:
        return None
    credited = lines[:1]
    note = {
        "organization_id": inv["organization_id"],
        "business_unit_id": inv["business_unit_id"],
        "customer_id": inv["customer_id"],
        "external_id": f"crn_{inv['external_id'][4:]}",
        "number": f"CN-{inv['number']}",
        "issue_date": min(inv["issue_date"] + timedelta(days=rng.randint(1, 20)), b.anchor),
        "currency": inv["currency"],
        "subtotal": credited[0]["net_amount"],
        "tax_total": credited[0]["tax_amount"],
        "total": credited[0]["net_amount"] + credited[0]["tax_amount"],
        "reason": rng.choice(["Price correction", "Returned goods", "Hours billed twice", None]),
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    return note, credited


def _write_chunk(chunk: list[_OrgBuilder]) -> dict[str, int]:
    """Insert a chunk of organizations with everything below them; return counts."""

    def insert_returning(model, rows):
        if not rows:
            return []
        stmt = insert(model).returning(model.id, sort_by_parameter_order=True)
        return list(db.session.scalars(stmt, rows))

    org_rows = [b.organization() for b in chunk]
    org_ids = insert_returning(Organization, org_rows)

    unit_rows: list[dict] = []
    cust_rows: list[dict] = []
    prod_rows: list[dict] = []
    plan = []
    for b, org_id, org in zip(chunk, org_ids, org_rows, strict=True):
        units = b.business_units(org_id, org["name"])
        customers = b.customers(org_id, b.rng.randint(5, 12))
        products = b.products(org_id, b.rng.randint(3, 8))
        plan.append(
            (
                b,
                org_id,
                len(unit_rows),
                len(units),
                len(cust_rows),
                len(customers),
                len(prod_rows),
                len(products),
            )
        )
        unit_rows += units
        cust_rows += customers
        prod_rows += products
    unit_ids = insert_returning(BusinessUnit, unit_rows)
    cust_ids = insert_returning(Customer, cust_rows)
    prod_ids = insert_returning(Product, prod_rows)
    for row, pid in zip(prod_rows, prod_ids, strict=True):
        row["id"] = pid

    invoice_rows: list[dict] = []
    invoice_plans: list[tuple[list[dict], dict | None, tuple[dict, list[dict]] | None]] = []
    for b, org_id, u0, un, c0, cn, p0, pn in plan:
        rng, anchor = b.rng, b.anchor
        unit_pairs = list(zip(unit_ids[u0 : u0 + un], unit_rows[u0 : u0 + un], strict=True))
        products = prod_rows[p0 : p0 + pn]
        seq: dict[tuple[int, int], int] = {}
        # Dates first, in order, so that invoice numbers rise with the date as in a real ledger.
        dates = sorted(anchor - timedelta(days=rng.randint(0, 3 * 365)) for _ in range(rng.randint(8, 24)))
        for k, issue in enumerate(dates):
            unit_id, unit = unit_pairs[0] if len(unit_pairs) == 1 or rng.random() < 0.8 else unit_pairs[1]
            lines = b.lines(products, COUNTRIES[unit["country"]].rates)
            subtotal = sum((line["net_amount"] for line in lines), Decimal(0))
            tax = sum((line["tax_amount"] for line in lines), Decimal(0))
            key = (unit_id, issue.year)
            seq[key] = seq.get(key, 0) + 1
            invoice = {
                "organization_id": org_id,
                "business_unit_id": unit_id,
                "customer_id": cust_ids[c0 + rng.randrange(cn)],
                "external_id": f"inv_{b.index:06d}_{k:05d}",
                "number": f"{unit['country']}{issue.year}-{seq[key]:05d}",
                "issue_date": issue,
                "due_date": issue + timedelta(days=rng.choice([14, 30, 30, 45])),
                "currency": unit["currency"],
                "subtotal": subtotal,
                "tax_total": tax,
                "total": subtotal + tax,
                "status": InvoiceStatus.open,
                "amount_paid": Decimal("0.00"),
                "created_at": utcnow(),
                "updated_at": utcnow(),
            }
            # Payment and credit-note outcomes are decided before writing, so no update pass.
            payment = _plan_payment(b, invoice)
            note = _plan_credit_note(b, invoice, lines)
            invoice_rows.append(invoice)
            invoice_plans.append((lines, payment, note))
    invoice_ids = insert_returning(Invoice, invoice_rows)

    line_rows, payment_rows, note_rows, note_lines = [], [], [], []
    for inv_id, (lines, payment, note) in zip(invoice_ids, invoice_plans, strict=True):
        line_rows += [{**line, "invoice_id": inv_id} for line in lines]
        if payment is not None:
            payment_rows.append({**payment, "invoice_id": inv_id})
        if note is not None:
            note_rows.append({**note[0], "invoice_id": inv_id})
            note_lines.append(note[1])
    if line_rows:
        db.session.execute(insert(InvoiceLine), line_rows)
    if payment_rows:
        db.session.execute(insert(Payment), payment_rows)
    note_ids = insert_returning(CreditNote, note_rows)
    if note_ids:
        db.session.execute(
            insert(CreditNoteLine),
            [
                {**line, "credit_note_id": nid}
                for nid, lines in zip(note_ids, note_lines, strict=True)
                for line in lines
            ],
        )
    return {
        "organizations": len(org_ids),
        "business_units": len(unit_ids),
        "customers": len(cust_ids),
        "products": len(prod_ids),
        "invoices": len(invoice_ids),
        "credit_notes": len(note_ids),
        "payments": len(payment_rows),
    }
