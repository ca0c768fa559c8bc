"""What a sandbox ledger holds, read as an auditor would: its customers, and how many of them are there twice.

For tests and benches (a corpus proof can print ``count_duplicate_ledger_customers`` per provider
as "duplicated customers (must be 0)"). Reads the sandbox's JSON view of a company's ledger over
HTTP; nothing here asks the portal.
"""

from __future__ import annotations

import re
from collections import Counter

import requests

from portal.customers import matching

#: Start of the QuickBooks customer note carrying our reference (portal.integrations.quickbooks.REFERENCE_NOTE).
QBO_REFERENCE_NOTE = "Ledgerlink reference: "


def ledger_view(sandbox_url: str, provider: str, company: str) -> dict:
    """Return the sandbox's JSON view of one company's ledger."""
    response = requests.get(f"{sandbox_url}/_control/ledger/{provider}/{company}", timeout=30)
    response.raise_for_status()
    return response.json()


def ledger_customers(sandbox_url: str, provider: str, company: str) -> list[dict]:
    """Return the company's customers as ``{"id", "name", "reference", "email", "vat"}`` (deleted ones left out).

    ``reference`` is what carries the SaaS's customer id, where the ledger has one: Exact's
    account code, bexio's contact number, the reference line of a QuickBooks customer's note.
    """
    view = ledger_view(sandbox_url, provider, company)
    if provider == "exact-online":
        return [
            {
                "id": row["ID"],
                "name": row.get("Name") or "",
                "reference": (row.get("Code") or "").strip() or None,
                "email": row.get("Email"),
                "vat": row.get("VATNumber"),
            }
            for row in view["tables"].get("Accounts", [])
        ]
    if provider == "quickbooks":
        found = []
        for row in view["entities"].get("Customer", []):
            notes = str(row.get("Notes") or "")
            marker = re.search(re.escape(QBO_REFERENCE_NOTE) + r"(.+)", notes)
            found.append(
                {
                    "id": str(row["Id"]),
                    "name": row.get("DisplayName") or "",
                    "reference": marker.group(1).strip() if marker else None,
                    "email": (row.get("PrimaryEmailAddr") or {}).get("Address"),
                    "vat": None,
                }
            )
        return found
    return [
        {
            "id": str(row["id"]),
            "name": row.get("name_1") or "",
            "reference": row.get("nr"),
            "email": row.get("mail"),
            "vat": None,
        }
        for row in view["contacts"]
        if not row.get("deleted")
    ]


def _identity(customer: dict) -> tuple:
    """Return who a ledger customer is: our reference where it carries one, else its normalised name, e-mail and VAT."""
    if customer["reference"]:
        return ("reference", customer["reference"])
    emails = matching.normalise_emails(customer["email"])
    return (
        "details",
        matching.normalise_name(customer["name"]),
        emails[0] if emails else None,
        matching.normalise_vat(customer["vat"]),
    )


def count_duplicate_ledger_customers(sandbox_url: str, provider: str, company: str) -> int:
    """Return how many ledger customers are a customer the ledger has already (must be 0).

    Customers are the same when they carry the same reference of ours, or — without one — the
    same normalised name, e-mail address and VAT number. Each group of n counts n - 1.
    """
    groups = Counter(_identity(customer) for customer in ledger_customers(sandbox_url, provider, company))
    return sum(n - 1 for n in groups.values())
