"""Time the customer-link matcher on 10,000 SaaS customers against 10,000 ledger customers.

Generates messy, overlapping data (VAT numbers written the way people type them, legal forms,
accents, typos, shared company and free-mail domains), runs the very code the suggestion job
runs (``portal.customers.matching``: index, then suggest) and prints the time, the suggestions
by evidence kind, the ambiguous count and how many planted pairs were found. Never asserts on timing.

Usage: ``.venv/bin/python bench/customer_matching.py [--n 10000] [--seed 7]``
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portal.customers.matching import LedgerIndex, Party, suggest
from portal.demo.identifiers import VAT_GENERATORS, company_number, messy

FIRST = [
    "Bakkerij",
    "Jansen",
    "de",
    "Groot",
    "Müller",
    "Schmidt",
    "Dubois",
    "Lefèvre",
    "García",
    "Martínez",
    "Smith",
    "Brown",
    "O'Neill",
    "Huber",
    "Meier",
    "Keller",
    "Peeters",
    "Janssens",
    "Van",
    "Dijk",
    "Bakker",
    "Visser",
    "Smit",
    "Meyer",
    "Wagner",
    "Becker",
    "Moreau",
    "Laurent",
    "Fernández",
    "López",
    "Taylor",
    "Wilson",
    "Evans",
    "Zürcher",
    "Café",
    "Élan",
    "Nordlicht",
    "Alpenblick",
    "Rheinland",
    "Brabant",
    "Kempen",
    "Flandria",
    "Iberia",
    "Provence",
    "Thames",
    "Severn",
    "Atlas",
    "Orion",
    "Vega",
    "Polaris",
    "Zenith",
    "Apex",
    "Summit",
    "Harbor",
    "Cedar",
    "Maple",
    "Aspen",
]
TRADE = [
    "Installatietechniek",
    "Logistiek",
    "Bouw",
    "Transport",
    "Consulting",
    "Software",
    "Systems",
    "Trading",
    "Holding",
    "Services",
    "Maschinenbau",
    "Elektro",
    "Druckerei",
    "Immobilien",
    "Beratung",
    "Informatique",
    "Conseil",
    "Distribution",
    "Construcciones",
    "Servicios",
    "Engineering",
    "Solutions",
    "Bakery",
    "Catering",
    "Design",
    "Media",
    "Partners",
    "Group",
    "Industries",
    "Foods",
    "Textiles",
]
FORMS = {
    "NL": ["B.V.", "BV", "VOF", "N.V.", ""],
    "BE": ["BV", "NV", "SRL", "SA", "bvba"],
    "DE": ["GmbH", "GmbH & Co. KG", "AG", "UG", "e.K."],
    "GB": ["Ltd", "Ltd.", "Limited", "PLC", "LLP"],
    "FR": ["SARL", "SAS", "S.A.", "EURL", ""],
    "ES": ["S.L.", "SL", "S.A.", "SLU", ""],
    "CH": ["AG", "GmbH", "Sàrl", "SA", ""],
}
CITY = [
    "Utrecht",
    "Zwolle",
    "Gent",
    "Antwerpen",
    "Köln",
    "München",
    "Zürich",
    "Genève",
    "Lyon",
    "Lille",
    "Sevilla",
    "Bilbao",
    "Leeds",
    "Bristol",
    "Basel",
    "Luzern",
    "Bern",
    "Delft",
    "Leiden",
    "Brugge",
    "Mainz",
    "Bremen",
    "Nantes",
    "Rennes",
    "Malaga",
    "Murcia",
    "York",
    "Bath",
    "Aarau",
    "Chur",
    "Namur",
    "Haarlem",
    "Arnhem",
    "Tilburg",
    "Essen",
    "Dortmund",
    "Toulouse",
    "Nice",
    "Girona",
    "Cádiz",
    "Oxford",
    "Cardiff",
    "Lugano",
    "Sion",
    "Mons",
    "Liège",
]
FREE = ["gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "gmx.de", "icloud.com"]


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in plain if ch.isalnum())[:20] or "firm"


def _typo(rng: random.Random, name: str) -> str:
    if len(name) < 8:
        return name
    i = rng.randrange(3, len(name) - 1)
    return name[:i] + name[i + 1 :]  # one dropped letter


def generate(n: int, seed: int) -> tuple[list[Party], list[Party], dict[int, str]]:
    """Return SaaS customers, ledger customers and the planted pairs (customer id → ledger id)."""
    rng = random.Random(seed)
    saas: list[Party] = []
    ledger: list[Party] = []
    planted: dict[int, str] = {}
    # A few big companies with many mailboxes on one domain (shared e-mail domains).
    shared = [f"{_slug(rng.choice(FIRST))}-group{i}.example" for i in range(40)]
    for i in range(n):
        country = rng.choice(sorted(FORMS))
        base = f"{rng.choice(FIRST)} {rng.choice(TRADE)} {rng.choice(CITY)}"
        vat = VAT_GENERATORS[country](rng) if rng.random() < 0.7 else None
        coc = company_number(rng, country, vat) if rng.random() < 0.5 else None
        roll = rng.random()
        if roll < 0.6:
            domain = f"{_slug(base)}{i}.example"
        elif roll < 0.8:
            domain = rng.choice(FREE)
        else:
            domain = rng.choice(shared)
        # Free-mail addresses are personal; company mailboxes are role addresses.
        mailbox = f"{_slug(base)}{i}" if domain in FREE else rng.choice(["info", "billing", "accounts", "finance"])
        email = f"{mailbox}@{domain}"
        saas.append(
            Party(
                i,
                f"{base} {rng.choice(FORMS[country])}".strip(),
                messy(rng, vat) if vat else None,
                coc,
                email if rng.random() < 0.9 else None,
                country,
            )
        )
        # 60 % of SaaS customers exist in the ledger, written differently.
        if rng.random() < 0.6:
            ledger_id = f"L{i}"
            planted[i] = ledger_id
            name = f"{base} {rng.choice(FORMS[country])}".strip()
            if rng.random() < 0.2:
                name = _typo(rng, name)
            if rng.random() < 0.3:
                name = name.upper()
            ledger.append(
                Party(
                    ledger_id,
                    name,
                    vat if vat and rng.random() < 0.6 else None,
                    coc if coc and rng.random() < 0.3 else None,
                    (email.upper() if rng.random() < 0.3 else email) if rng.random() < 0.5 else None,
                    country,
                    active=rng.random() > 0.05,
                )
            )
    # The rest of the ledger: customers the SaaS does not have (some with similar names).
    extra = 0
    while len(ledger) < n:
        country = rng.choice(sorted(FORMS))
        base = f"{rng.choice(FIRST)} {rng.choice(TRADE)} {rng.choice(CITY)}"
        vat = VAT_GENERATORS[country](rng) if rng.random() < 0.6 else None
        domain = rng.choice(FREE + shared) if rng.random() < 0.4 else f"{_slug(base)}x{extra}.example"
        mailbox = f"{_slug(base)}x{extra}" if domain in FREE else "office"
        ledger.append(
            Party(
                f"X{extra}", f"{base} {rng.choice(FORMS[country])}".strip(), vat, None, f"{mailbox}@{domain}", country
            )
        )
        extra += 1
    rng.shuffle(ledger)
    return saas, ledger, planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="SaaS customers and ledger customers (each)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    saas, ledger, planted = generate(args.n, args.seed)
    started = time.perf_counter()
    index = LedgerIndex(ledger)
    indexed = time.perf_counter()
    found = suggest(saas, index)
    finished = time.perf_counter()

    clear = [s for s in found if not s.ambiguous]
    by_kind = Counter(s.best.method for s in clear)
    right = sum(1 for s in clear if planted.get(s.customer_id) == s.best.external_id)
    print(f"customer matching: {len(saas)} SaaS customers x {len(ledger)} ledger customers")
    print(f"  time: {finished - started:.2f} s (index {indexed - started:.2f} s, suggest {finished - indexed:.2f} s)")
    print(f"  suggestions: {len(clear)} clear, {len(found) - len(clear)} ambiguous")
    print("  by evidence: " + ", ".join(f"{kind} {count}" for kind, count in by_kind.most_common()))
    print(
        f"  planted pairs: {len(planted)}; found as the clear suggestion: {right} ({right / max(1, len(planted)):.0%})"
    )
    print(f"  clear suggestions pointing elsewhere: {len(clear) - right}")


if __name__ == "__main__":
    main()
