"""Ledger truth: a generated corpus pushed into the sandbox ledgers, then read back from them.

Per provider, a corpus of invoices and credit notes (200 and 30 by default) goes in through the
ingestion API, is pushed by the real push job (``jobs.sync.push_connection``, in this process),
and every SaaS document is then looked up **in the sandbox ledger itself** by its number and
compared with what the SaaS invoiced, with the ledger's own rounding allowed:

- Exact Online: divisions in NL (21/9/0 %), BE (21/12/6/0 %), DE (19/7 %) and the UK (20/5/0 %);
- QuickBooks Online: the US company (taxable lines in California 8 %, Arizona 6.5 %, New York City
  8.875 %, Austin 8.25 %, and non-taxable ones) and the UK company (20/5/0 %);
- bexio: a Swiss company in CHF (8.1/2.6/3.8/0 %, the total rounded to 0.05).

The corpus mixes rates per country, discount lines, many-line invoices whose lines round
differently one by one than together, reverse-charge / exempt / export lines, amounts whose tax
ends on half a cent, rates no ledger code has (7.7 % in Switzerland since 2024, 16 % in Germany)
and US invoices taxed in two states. It prints, per provider: documents pushed with equal totals,
held before writing (by reason), skipped (bexio has no credit-note API), refused by the ledger,
in the ledger but flagged "differs", **pushed with different totals (must be 0)**, **lost (must be
0)**, **in the ledger twice (must be 0)** and **duplicated customers (must be 0)**.

Usage: ``.venv/bin/python bench/ledger_truth.py [--invoices 200] [--credit-notes 30] [--seed 7]
[--json out.json] [--database-url URL]`` (SQLite in a temporary directory by default; Redis from
REDIS_URL or a private redis-server; the sandbox in its own process).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.push_pipeline import free_port, make_app, start_redis, start_sandbox, stop  # noqa: E402

CENT = Decimal("0.01")
TIMEOUT = 30
QBO_US, QBO_UK, BEXIO = "9341453908059321", "9341453908061187", "q69vysq7fkzl"


@dataclass(frozen=True)
class Unit:
    """One business unit of the corpus and the ledger company it is connected to."""

    provider: str
    key: str
    region: str | None
    company: str
    consent: dict
    country: str
    currency: str
    defaults: dict
    #: (rate, kind at 0 %) → ledger code, mapped in the tax table.
    table: dict
    #: The rates its invoices carry (the first is the default code's).
    rates: tuple[str, ...]
    #: Kinds of 0 % lines it invoices.
    zero_kinds: tuple[str, ...] = ("zero",)
    #: A rate no code of the ledger has (the SaaS still sends it sometimes).
    stray_rate: str | None = None
    #: US: taxable lines of one document share one rate.
    us: bool = False
    #: Share of the provider's corpus.
    share: float = 1.0


EXACT_DEFAULTS = {"item": "CONSULT", "journal": "70", "payment_condition": "30"}
UNITS = (
    Unit(
        "exact-online", "exact-nl", "nl", "3010001", {"user": "jan.devries", "divisions": ["3010001"]}, "NL", "EUR",
        {**EXACT_DEFAULTS, "tax_code": "2"},
        {("9", "standard"): "1", ("0", "zero"): "0", ("0", "reverse_charge"): "3", ("0", "exempt"): "5",
         ("0", "outside_scope"): "6"},
        ("21", "9", "0"), ("zero", "reverse_charge", "exempt", "outside_scope"), None, share=0.3,
    ),
    Unit(
        "exact-online", "exact-be", "be", "3020001", {"user": "lotte.peeters", "divisions": ["3020001"]}, "BE",
        "EUR", {**EXACT_DEFAULTS, "tax_code": "3"},
        {("12", "standard"): "2", ("6", "standard"): "1", ("0", "zero"): "0", ("0", "reverse_charge"): "4"},
        ("21", "12", "6", "0"), ("zero", "reverse_charge"), None, share=0.25,
    ),
    Unit(
        "exact-online", "exact-de", "de", "3030001", {"user": "anna.schmidt", "divisions": ["3030001"]}, "DE", "EUR",
        {**EXACT_DEFAULTS, "tax_code": "19"},
        {("7", "standard"): "7", ("0", "reverse_charge"): "13"},
        ("19", "7"), ("reverse_charge",), "16", share=0.2,
    ),
    Unit(
        "exact-online", "exact-uk", "uk", "3040001", {"user": "oliver.smith", "divisions": ["3040001"]}, "GB", "GBP",
        {**EXACT_DEFAULTS, "tax_code": "20"},
        {("5", "standard"): "5", ("0", "zero"): "0", ("0", "exempt"): "E"},
        ("20", "5", "0"), ("zero", "exempt"), None, share=0.25,
    ),
    Unit(
        "quickbooks", "qbo-us", None, QBO_US, {"user": "u-ada", "realm_id": QBO_US}, "US", "USD",
        {"item": "1", "tax_code": "2", "class": "1", "payment_condition": "3", "gl_account": "1"},
        {("6.5", "standard"): "3", ("8.875", "standard"): "4", ("8.25", "standard"): "5"},
        ("8", "6.5", "8.875", "8.25", "0"), ("zero", "exempt"), None, us=True, share=0.6,
    ),
    Unit(
        "quickbooks", "qbo-uk", None, QBO_UK, {"user": "u-ada", "realm_id": QBO_UK}, "GB", "GBP",
        {"item": "1", "tax_code": "2", "payment_condition": "3", "gl_account": "1"},
        {("5", "standard"): "3", ("0", "zero"): "4", ("0", "exempt"): "5", ("0", "outside_scope"): "6"},
        ("20", "5", "0"), ("zero", "exempt", "outside_scope"), None, share=0.4,
    ),
    Unit(
        "bexio", "bexio-ch", None, BEXIO, {"username": "max.mustermann", "company_id": BEXIO}, "CH", "CHF",
        {"tax_code": "UN81", "gl_account": "3200", "bank_account": "1", "payment_condition": "4"},
        {("2.6", "standard"): "UR26", ("3.8", "standard"): "US38", ("0", "zero"): "U00"},
        ("8.1", "2.6", "3.8", "0"), ("zero",), "7.7",
    ),
)  # fmt: skip
PROVIDERS = ("exact-online", "quickbooks", "bexio")


# -- the corpus -------------------------------------------------------------------------------------


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def half_cent_prices(rate: Decimal) -> list[Decimal]:
    """Return unit prices (one unit) whose tax at ``rate`` ends on exactly half a cent."""
    found = []
    for cents in range(1, 20000):
        net = Decimal(cents) / 100
        tax = net * rate / 100
        if (tax * 1000) % 10 == 5 and tax == tax.quantize(Decimal("0.001")):
            found.append(net)
        if len(found) >= 40:
            break
    return found


@dataclass
class Corpus:
    """What the SaaS sends: per unit, invoices (with lines) and credit notes."""

    invoices: dict[str, list[dict]] = field(default_factory=dict)
    credit_notes: dict[str, list[dict]] = field(default_factory=dict)


def generate(rng: random.Random, unit: Unit, invoices: int, credit_notes: int, today: date) -> tuple[list, list]:
    """Return (invoice bodies, credit-note bodies) of one unit, deterministic for the seed."""
    docs, notes = [], []
    edges = {rate: half_cent_prices(Decimal(rate)) for rate in unit.rates if Decimal(rate) > 0}
    kinds = ["simple"] * 55 + ["discount"] * 10 + ["many"] * 12 + ["zero_kinds"] * 10 + ["edge"] * 10
    kinds += ["stray"] * (3 if unit.stray_rate else 0) + ["two_states"] * (3 if unit.us else 0)
    for n in range(invoices):
        kind = rng.choice(kinds)
        lines = _lines(rng, unit, kind, edges)
        number = f"{unit.key.upper()}-{n + 1:04d}-{rng.randrange(16**4):04x}"
        docs.append(
            {
                "id": f"inv-{number}",
                "kind": kind,
                "body": {
                    "number": number,
                    "issue_date": today.isoformat(),
                    "due_date": (today + timedelta(days=30)).isoformat(),
                    "currency": unit.currency,
                    "lines": [{**line, "position": i} for i, line in enumerate(lines, start=1)],
                },
            }
        )
    for n, invoice in enumerate(rng.sample(docs, min(credit_notes, len(docs)))):
        line = rng.choice(invoice["body"]["lines"])
        if Decimal(str(line["unit_price"])) <= 0:
            line = max(invoice["body"]["lines"], key=lambda x: Decimal(str(x["unit_price"])))
        quantity = Decimal(str(line["quantity"]))
        credited = {
            k: v for k, v in line.items() if k in ("description", "unit_price", "tax_rate", "tax_kind", "position")
        }
        # At most 21 characters: QuickBooks keeps no longer DocNumber (quickbooks-online.md §6).
        number = f"CN-{unit.key[-5:].upper()}-{n + 1:03d}-{rng.randrange(16**4):04x}"
        notes.append(
            {
                "id": f"cn-{number}",
                "invoice": invoice["id"],
                "body": {
                    "number": number,
                    "issue_date": today.isoformat(),
                    "currency": unit.currency,
                    "reason": "Credited in part",
                    "lines": [{**credited, "position": 1, "quantity": str(max(quantity / 2, Decimal("0.25")))}],
                },
            }
        )
    return docs, notes


def _lines(rng: random.Random, unit: Unit, kind: str, edges: dict) -> list[dict]:
    rates = [r for r in unit.rates if Decimal(r) > 0]
    state = rng.choice(rates)  # US: the one taxable rate of the document

    def rate() -> str:
        if unit.us:
            return state if rng.random() < 0.75 else "0"
        return rng.choice(unit.rates)

    def line(quantity: str, price: Decimal | str, tax: str, text: str = "Services", tax_kind: str | None = None):
        out = {"description": text, "quantity": quantity, "unit_price": str(price), "tax_rate": tax}
        if tax_kind and Decimal(tax) == 0:
            out["tax_kind"] = tax_kind
        return out

    def price() -> Decimal:
        return Decimal(rng.randint(100, 250000)) / 100

    quantities = ["1", "1", "2", "3", "1.5", "0.25", "12", "7"]
    if kind == "many":
        small = ["0.05", "0.15", "0.45", "0.50", "1.05", "2.35", "0.125", "0.3333", "3.33", "9.99"]
        return [
            line(rng.choice(["1", "1", "3", "2.5"]), rng.choice(small), rate(), "Usage")
            for _ in range(rng.randint(8, 20))
        ]
    if kind == "edge":
        tax = state if unit.us else rng.choice(rates)
        # At 20 % a net in cents never taxes to half a cent: any price there.
        return [line("1", rng.choice(edges[tax] or [price()]), tax, "Half a cent")]
    if kind == "stray":
        return [line("1", price(), unit.stray_rate or rates[0], "Old rate")]
    if kind == "two_states":
        first, second = rng.sample(rates, 2)
        return [line("1", price(), first, "State A"), line("1", price(), second, "State B")]
    found = [line(rng.choice(quantities), price(), rate()) for _ in range(rng.randint(1, 4))]
    if kind == "discount":
        first = found[0]
        net = money(Decimal(first["quantity"]) * Decimal(first["unit_price"]))
        found.append(line("1", -money(net / 10), first["tax_rate"], "Discount 10 %"))
    if kind == "zero_kinds":
        zero_kind = rng.choice(unit.zero_kinds)
        found.append(line("1", price(), "0", f"Zero-rated ({zero_kind})", zero_kind))
    return found


# -- pushing it --------------------------------------------------------------------------------------


def connect(app, sandbox_url: str, unit_id: int, unit: Unit) -> int:
    """Connect a unit through the consent flow, read the ledger's reference data, map defaults and the tax table."""
    from portal.connections import services
    from portal.extensions import db
    from portal.mappings import services as mappings
    from portal.mappings import taxes
    from portal.models import BusinessUnit

    with app.test_request_context("/"):
        business_unit = db.session.get(BusinessUnit, unit_id)
        authorize = urlsplit(services.start_authorization(business_unit, unit.provider, unit.region))
        body = {"provider": unit.provider, **dict(parse_qsl(authorize.query)), **unit.consent}
        if unit.region:
            body["region"] = unit.region
        approved = requests.post(f"{sandbox_url}/_control/consent", json=body, timeout=TIMEOUT)
        approved.raise_for_status()
        grant = services.complete_authorization(dict(parse_qsl(urlsplit(approved.json()["redirect_url"]).query)))
        connection = services.pin_company(grant, unit.company, actor_label="bench")
        db.session.commit()
        mappings.refresh_reference(connection)
        mappings.set_mappings(connection, unit.defaults)
        taxes.set_tax_table(
            connection,
            {taxes.RateKey.of(Decimal(rate), kind if Decimal(rate) == 0 else None): code
             for (rate, kind), code in unit.table.items()},
        )  # fmt: skip
        connection.sync_from = connection.sync_from.replace(hour=0, minute=0, second=0, microsecond=0)
        db.session.commit()
        return connection.id


def ingest(app, unit: Unit, docs: list[dict], notes: list[dict]) -> dict:
    """Create the unit's organization and send customers, invoices and credit notes through the API."""
    from portal.api.auth import create_client
    from portal.extensions import db
    from portal.models import BusinessUnit, Organization

    with app.app_context():
        org = Organization(
            external_id=f"truth-{unit.key}-{os.urandom(3).hex()}", name=f"Truth {unit.key}", country=unit.country
        )
        business_unit = BusinessUnit(organization=org, name=unit.key, country=unit.country, currency=unit.currency)
        db.session.add_all([org, business_unit])
        db.session.commit()
        org_id, unit_id = org.external_id, business_unit.id
    with app.test_request_context("/"):
        _, key = create_client(f"truth-{unit.key}-{os.urandom(2).hex()}", ["ingest"])
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    base = f"/api/v1/organizations/{org_id}"

    def put(path: str, body: dict) -> None:
        answer = client.put(f"{base}/{path}", json=body, headers=headers)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"PUT {path}: {answer.status_code} {answer.get_json()}")

    customers = [f"cus-{unit.key}-{i}" for i in range(5)]
    for i, customer in enumerate(customers):
        put(
            f"customers/{customer}",
            {"name": f"Truth {unit.key} customer {i} {os.urandom(2).hex()}", "email": f"c{i}@truth.example",
             "country": unit.country, "street": "Main Street 1", "postcode": "1000", "city": "Town"},
        )  # fmt: skip
    for n, doc in enumerate(docs):
        put(f"invoices/{doc['id']}", {**doc["body"], "business_unit": unit_id, "customer": customers[n % 5]})
    for note in notes:
        put(f"credit-notes/{note['id']}", {**note["body"], "invoice": note["invoice"]})
    return {"unit_id": unit_id, "customers": customers}


def push(app, connection_id: int) -> dict:
    """Run the connection's push job in this process, as a worker runs it; return its counts."""
    from jobs.sync import push_connection
    from portal.extensions import db
    from portal.models import SyncRun, SyncRunKind

    with app.app_context():
        run = SyncRun(kind=SyncRunKind.incremental, queue="sync", parameters={"connection_id": connection_id})
        db.session.add(run)
        db.session.commit()
        push_connection(run.id)
        db.session.expire_all()
        run = db.session.get(SyncRun, run.id)
        if run.status.value != "succeeded":
            raise RuntimeError(f"push of connection {connection_id} ended {run.status.value}: {run.message}")
        return dict(run.counts or {})


# -- reading the ledgers back ----------------------------------------------------------------------


def ledger_documents(sandbox_url: str, unit: Unit) -> dict[tuple[str, str], list]:
    """Return the ledger's documents by (kind, our reference) with their totals as (net, tax, total)."""
    from portal.integrations.totals import Totals

    data = requests.get(f"{sandbox_url}/_control/ledger/{unit.provider}/{unit.company}", timeout=TIMEOUT).json()
    found: dict[tuple[str, str], list] = {}
    if unit.provider == "exact-online":
        for row in data["tables"].get("SalesInvoices", []):
            kind = "credit_note" if row["Type"] in (8021, 8024) else "invoice"
            totals = Totals(_d(row["AmountFCExclVat"]), _d(row["VATAmountFC"]), _d(row["AmountFC"])).absolute()
            found.setdefault((kind, row.get("YourRef") or ""), []).append(totals)
    elif unit.provider == "quickbooks":
        for entity, kind in (("Invoice", "invoice"), ("CreditMemo", "credit_note")):
            for row in data["entities"].get(entity, []):
                tax = _d((row.get("TxnTaxDetail") or {}).get("TotalTax") or 0)
                total = _d(row["TotalAmt"])
                found.setdefault((kind, row.get("DocNumber") or ""), []).append(Totals(total - tax, tax, total))
    else:
        for row in data["invoices"]:
            totals = Totals(_d(row["total_net"]), _d(row["total_taxes"]), _d(row["total"]))
            found.setdefault(("invoice", row.get("api_reference") or ""), []).append(totals)
    return found


def ledger_customer_names(sandbox_url: str, unit: Unit) -> Counter:
    data = requests.get(f"{sandbox_url}/_control/ledger/{unit.provider}/{unit.company}", timeout=TIMEOUT).json()
    if unit.provider == "exact-online":
        return Counter((r.get("Name") or "").strip() for r in data["tables"].get("Accounts", []))
    if unit.provider == "quickbooks":
        return Counter(r.get("DisplayName") or "" for r in data["entities"].get("Customer", []))
    return Counter((r.get("name_1") or "").strip() for r in data["contacts"] if not r.get("deleted"))


def _d(value) -> Decimal:
    return Decimal(str(value))


#: The reason of a hold from its stored words (portal/sync/guard.py, portal/mappings/taxes.py).
REASONS = (
    (r"; no .* is mapped to", "rate not mapped"),
    (r"and none of .* is at", "rate no ledger code has"),
    (r"more decimals than", "rate with more decimals than the ledger keeps"),
    (r"which is at .*%: (choose|map)", "code at another rate"),
    (r"one sales tax rate per document", "US: taxable lines at two rates"),
    (r"keeps each line's amount as quantity x unit price", "line amounts kept unrounded by the ledger"),
    (r"would book .*the SaaS rounds each line's tax", "ledger rounds tax per rate, the SaaS per line"),
    (r"would book", "ledger rounds the total"),
    (r"which is not in the ledger\s+yet", "its invoice is held"),
    (r"is not linked", "customer not linked"),
)


def reason_of(text: str | None) -> str:
    for pattern, reason in REASONS:
        if text and re.search(pattern, text, re.S):
            return reason
    return f"other: {(text or '')[:80]}"


def verify(app, sandbox_url: str, unit: Unit, connection_id: int, docs: list, notes: list) -> dict:
    """Compare every SaaS document with the ledger's; return the counts of one unit."""
    from portal.extensions import db
    from portal.integrations import specs
    from portal.integrations.totals import Totals, differences
    from portal.models import CreditNote, ExternalRecord, Invoice, RecordKind

    arithmetic = specs.get_spec(unit.provider).arithmetic
    ledger = ledger_documents(sandbox_url, unit)
    counts: Counter = Counter()
    held: Counter = Counter()
    with app.app_context():
        for kind, model, items in (("invoice", Invoice, docs), ("credit_note", CreditNote, notes)):
            for item in items:
                document = db.session.scalar(db.select(model).filter_by(external_id=item["id"]))
                record = db.session.scalar(
                    db.select(ExternalRecord).filter_by(
                        connection_id=connection_id, kind=RecordKind(kind), local_id=document.id
                    )
                )
                counts["documents"] += 1
                there = ledger.get((kind, document.number), [])
                saas = Totals(document.subtotal, document.tax_total, document.total)
                state = record.state.value if record else "none"
                if len(there) > 1:
                    counts["twice in the ledger"] += 1
                elif there:
                    differs = differences(arithmetic, document.currency, saas, there[0])
                    if not differs and state == "pushed":
                        counts["pushed, equal totals"] += 1
                    elif differs and record is not None and record.differs:
                        counts["in the ledger, flagged differs"] += 1
                    elif differs:
                        counts["pushed, different totals"] += 1
                    else:
                        counts[f"in the ledger, record {state}"] += 1
                elif state == "needs_action":
                    counts["held before writing"] += 1
                    held[reason_of(record.last_error_text)] += 1
                elif state == "skipped":
                    counts["skipped (no API)"] += 1
                elif state == "failed":
                    counts["refused by the ledger"] += 1
                    held[f"refused: {reason_of(record.last_error_text)}"] += 1
                else:
                    counts["lost"] += 1
    return {"counts": counts, "held": held}


# -- the run ----------------------------------------------------------------------------------------


COLUMNS = (
    "documents",
    "pushed, equal totals",
    "held before writing",
    "skipped (no API)",
    "refused by the ledger",
    "in the ledger, flagged differs",
    "pushed, different totals",
    "lost",
    "twice in the ledger",
    "duplicated customers",
)


def run(app, sandbox_url: str, invoices: int, credit_notes: int, seed: int) -> dict:
    """Generate, ingest, push and verify the corpus of every provider; return the results per provider."""
    rng = random.Random(seed)
    today = date.today()
    results: dict[str, dict] = {p: {"counts": Counter(), "held": Counter(), "seconds": 0.0} for p in PROVIDERS}
    for unit in UNITS:
        started = time.monotonic()
        docs, notes = generate(
            rng,
            unit,
            max(1, round(invoices * unit.share)),
            max(1, round(credit_notes * unit.share)),
            today,
        )
        ids = ingest(app, unit, docs, notes)
        connection_id = connect(app, sandbox_url, ids["unit_id"], unit)
        push(app, connection_id)
        found = verify(app, sandbox_url, unit, connection_id, docs, notes)
        names = ledger_customer_names(sandbox_url, unit)
        ours = _customer_names(app, ids["customers"])
        found["counts"]["duplicated customers"] += sum(max(0, names[name] - 1) for name in ours)
        result = results[unit.provider]
        result["counts"].update(found["counts"])
        result["held"].update(found["held"])
        result["seconds"] += time.monotonic() - started
        print(f"  {unit.key}: {dict(found['counts'])}", flush=True)
    return results


def _customer_names(app, external_ids: list[str]) -> list[str]:
    from portal.extensions import db
    from portal.models import Customer

    with app.app_context():
        return [
            name
            for (name,) in db.session.execute(db.select(Customer.name).where(Customer.external_id.in_(external_ids)))
        ]


def report(results: dict) -> str:
    """Return the results as a table per provider, then the holds by reason."""
    lines = ["| provider | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for provider, result in results.items():
        lines.append(f"| {provider} | " + " | ".join(str(result["counts"].get(c, 0)) for c in COLUMNS) + " |")
    lines.append("")
    for provider, result in results.items():
        reasons = ", ".join(f"{reason}: {n}" for reason, n in result["held"].most_common()) or "none"
        lines.append(f"{provider} held by reason — {reasons}")
    must = {c: sum(r["counts"].get(c, 0) for r in results.values()) for c in COLUMNS[6:]}
    lines.append("")
    lines.append(
        "Summary: "
        + ", ".join(f"{c} {n}" for c, n in must.items())
        + (" — all zero, as they must be." if not any(must.values()) else " — NOT ZERO.")
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invoices", type=int, default=200, help="invoices per provider")
    parser.add_argument("--credit-notes", type=int, default=30, help="credit notes per provider")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--database-url", help="a database for the bench (default: SQLite in a temporary directory)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ledger-truth-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        sandbox = start_sandbox(port, workdir / "sandbox.log")
        redis_url, redis_process = start_redis(workdir)
        try:
            sandbox_url = f"http://127.0.0.1:{port}"
            database_url = args.database_url or f"sqlite:///{workdir / 'truth.sqlite'}"
            (workdir / "instance").mkdir()
            app = make_app(database_url, redis_url, sandbox_url, workdir / "instance")
            app.config["PUSH_LANES"] = True
            sizes = f"{args.invoices} invoices and {args.credit_notes} credit notes per provider"
            print(f"Ledger truth: {sizes}, seed {args.seed}", flush=True)
            results = run(app, sandbox_url, args.invoices, args.credit_notes, args.seed)
        finally:
            stop(sandbox)
            stop(redis_process)
    print(report(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {p: {"counts": dict(r["counts"]), "held": dict(r["held"]), "seconds": round(r["seconds"], 1)}
                 for p, r in results.items()},
                indent=2,
            )
        )  # fmt: skip
    must = sum(r["counts"].get(c, 0) for r in results.values() for c in COLUMNS[6:])
    return 1 if must else 0


if __name__ == "__main__":
    sys.exit(main())
