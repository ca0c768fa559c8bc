"""Exact Online's error texts in Dutch and English, and the error it raises with them.

Business-rule texts follow the user's language (exact-online.md §4.1: "Verplicht", "Ongeldige
referentie", "Gegeven bestaat reeds"); OData/WCF protocol texts are always English.
"""

from __future__ import annotations

#: Field labels as Exact shows them in validation messages (nl, en).
LABELS: dict[str, tuple[str, str]] = {
    "OrderedBy": ("Besteld door", "Ordered by"),
    "InvoiceTo": ("Factuur voor", "Invoice to"),
    "DeliverTo": ("Leveren aan", "Deliver to"),
    "Journal": ("Dagboek", "Journal"),
    "Journals": ("Journals", "Journals"),
    "Item": ("Artikel", "Item"),
    "Customer": ("Klant", "Customer"),
    "Name": ("Naam", "Name"),
    "Code": ("Code", "Code"),
    "Description": ("Omschrijving", "Description"),
    "GLAccount": ("Grootboekrekening", "G/L account"),
    "AmountFC": ("Bedrag", "Amount"),
    "VATCode": ("Btw-code", "VAT code"),
    "PaymentCondition": ("Betalingsconditie", "Payment condition"),
    "Subject": ("Onderwerp", "Subject"),
    "Type": ("Soort", "Type"),
    "Document": ("Document", "Document"),
    "FileName": ("Bestandsnaam", "File name"),
    "Attachment": ("Bijlage", "Attachment"),
    "InvoiceID": ("Factuur", "Invoice"),
    "EntryID": ("Boeking", "Entry"),
    "Account": ("Relatie", "Account"),
    "Lines": ("Regels", "Lines"),
    "Currency": ("Valuta", "Currency"),
    "JournalCode": ("Dagboek", "Journal"),
}

#: Whole messages (nl, en).
TEXTS: dict[str, tuple[str, str]] = {
    "mandatory": ("Verplicht: {label}", "Mandatory: {label}"),
    "invalid_reference": ("Ongeldige referentie: {label}", "Invalid reference: {label}"),
    "invalid_value": ("Ongeldig: {label}", "Invalid: {label}"),
    "exists": ("Gegeven bestaat reeds.", "Record already exists."),
    "processed": ("Reeds verwerkt", "Already processed"),
    "gl_type": ("Ongeldig: Grootboekrekeningtype", "Invalid: G/L account type"),
    # Worded after picqer#452's "Invalid journal. The journal must be a cash journal." (exact-online.md §4.2).
    "bank_journal": (
        "Ongeldig dagboek. Het dagboek moet een bankboek zijn.",
        "Invalid journal. The journal must be a bank journal.",
    ),
    "sales_journal": (
        "Ongeldig dagboek. Het dagboek moet een verkoopboek zijn.",
        "Invalid journal. The journal must be a sales journal.",
    ),
    # Not found in any source (exact-online.md §10 gap): worded after Exact's period-closing screens.
    "period_closed": (
        "Periode is afgesloten: {year} - {period}",
        "Period is closed: {year} - {period}",
    ),
    "no_fin_year": ("Boekjaar bestaat niet: {year}", "Financial year does not exist: {year}"),
    "email_missing": ("E-mailadres ontbreekt bij de relatie.", "The account has no e-mail address."),
    "email_ok": ("E-mail is aangemaakt.", "Email created."),
    "document_ok": ("Document is aangemaakt.", "Document created."),
}


def text(key: str, lang: str, **values: object) -> str:
    """Return message ``key`` in ``lang`` ("nl" or "en") with ``values`` filled in."""
    nl, en = TEXTS[key]
    return (nl if lang == "nl" else en).format(**values)


def label(field: str, lang: str) -> str:
    """Return the display label of ``field`` in ``lang``."""
    nl, en = LABELS.get(field, (field, field))
    return nl if lang == "nl" else en


class ExactError(Exception):
    """An API error rendered in Exact's body shape (exact-online.md §4.1) with an optional ``Reason`` header."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason

    def body(self) -> dict:
        """Return the JSON body Exact sends: code and lang empty, text in value."""
        return {"error": {"code": "", "message": {"lang": "", "value": self.message}}}


class Validation:
    """Collects validation messages so one response lists them all, joined with CRLF (exact-online.md §4.1)."""

    def __init__(self, lang: str, status: int) -> None:
        self.lang = lang
        self.status = status
        self.messages: list[str] = []

    def mandatory(self, field: str) -> None:
        """Record a missing mandatory field."""
        self.add(text("mandatory", self.lang, label=label(field, self.lang)))

    def reference(self, field: str) -> None:
        """Record a reference to a record that does not exist."""
        self.add(text("invalid_reference", self.lang, label=label(field, self.lang)))

    def add(self, message: str) -> None:
        """Record one message (once)."""
        if message not in self.messages:
            self.messages.append(message)

    def raise_if_any(self) -> None:
        """:raise ExactError: with every collected message."""
        if self.messages:
            raise ExactError(self.status, "\r\n".join(self.messages))
