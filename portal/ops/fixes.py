"""A held record's error in plain words, the provider's own text, and the screen that fixes it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from flask import url_for
from werkzeug.routing import BuildError

from ..integrations import errors_catalog
from ..integrations.errors_catalog import ErrorClass, Fix
from .queries.common import provider_name

#: Where each fix screen is, and what the link says. Screens outside the portal have no endpoint.
SCREENS: dict[str, tuple[str | None, str]] = {
    Fix.RECONNECT.value: ("connections.show_connection", "Re-authorize the connection"),
    Fix.COMPANY.value: ("connections.show_connection", "Check the pinned company"),
    Fix.SETTINGS.value: ("connections.show_connection", "Open the connection settings"),
    Fix.MAPPINGS.value: ("mappings.show_mappings", "Fix the mappings"),
    Fix.TAX_TABLE.value: ("mappings.show_mappings", "Map the tax rate"),
    Fix.CUSTOMER_LINKS.value: ("customers.show_customer_links", "Link the customers"),
    Fix.RECORD.value: ("ops.list_records", "Open the records"),
    Fix.LEDGER_PERIODS.value: (None, "Reopen the period in the ledger, then retry"),
    Fix.WAIT.value: ("ops.dashboard", "Wait for the quota to reset (see the quota use)"),
    Fix.HEALTH.value: ("ops.dashboard", "Check the ledger's health"),
}
#: The fix of a cause when the catalogue has no entry for the exact words.
BY_CLASS: dict[str, Fix] = {
    ErrorClass.AUTH_LOST.value: Fix.RECONNECT,
    ErrorClass.MAPPING_MISSING.value: Fix.MAPPINGS,
    ErrorClass.CUSTOMER_NOT_LINKED.value: Fix.CUSTOMER_LINKS,
    ErrorClass.CLOSED_PERIOD.value: Fix.LEDGER_PERIODS,
    ErrorClass.DUPLICATE.value: Fix.RECORD,
    ErrorClass.VALIDATION.value: Fix.RECORD,
    ErrorClass.RATE_LIMIT.value: Fix.WAIT,
    ErrorClass.PROVIDER_DOWN.value: Fix.HEALTH,
    ErrorClass.NOT_SUPPORTED.value: Fix.RECORD,
    ErrorClass.TAX_HELD.value: Fix.RECORD,
    ErrorClass.TOTALS_DIFFER.value: Fix.RECORD,
}
CLASS_TITLES = {
    ErrorClass.AUTH_LOST.value: "Access to the ledger lost",
    ErrorClass.MAPPING_MISSING.value: "Mapping missing or invalid",
    ErrorClass.CUSTOMER_NOT_LINKED.value: "Customer not linked",
    ErrorClass.CLOSED_PERIOD.value: "Period closed in the ledger",
    ErrorClass.DUPLICATE.value: "Already in the ledger",
    ErrorClass.VALIDATION.value: "Refused by the ledger",
    ErrorClass.RATE_LIMIT.value: "Rate limited",
    ErrorClass.PROVIDER_DOWN.value: "Ledger unavailable",
    ErrorClass.NOT_SUPPORTED.value: "Not supported by the ledger",
    ErrorClass.TAX_HELD.value: "Held: the ledger would total differently",
    ErrorClass.TOTALS_DIFFER.value: "Differs from the SaaS",
    "unclassified": "Unclassified",
}


@dataclass(frozen=True)
class Advice:
    """What the console says about an error."""

    plain: str
    provider_text: str | None
    fix_label: str
    #: The endpoint of the fixing screen (None: the fix happens outside the portal).
    endpoint: str | None
    #: Names of the URL arguments the endpoint takes.
    params: tuple[str, ...] = ("connection_id",)
    #: The part of the page to jump to, if any (e.g. the mappings page's tax table).
    anchor: str | None = None

    def url(self, connection_id: int | None = None, org_id: int | None = None) -> str | None:
        """Return the fixing screen's URL for a connection (None when it cannot be built)."""
        if self.endpoint is None:
            return None
        known = {"connection_id": connection_id, "org_id": org_id, "section": "invoices"}
        values: dict[str, Any] = {name: known.get(name) for name in self.params}
        if any(v is None for v in values.values()):
            return None
        if self.anchor:
            values["_anchor"] = self.anchor
        try:
            return url_for(self.endpoint, **values)
        except BuildError:
            return None


def split_text(provider: str, text: str | None) -> tuple[str, str | None]:
    """Split a stored error into the plain words and the provider's own text ("words (Exact: text)")."""
    text = text or ""
    marker = f" ({provider_name(provider)}: "
    at = text.rfind(marker)
    if at > 0 and text.endswith(")"):
        return text[:at], text[at + len(marker) : -1]
    return text, None


#: Ledgerlink's own holds before a write (portal/sync/guard.py), whatever the ledger: (words, fix).
OWN_HOLDS: tuple[tuple[str, Fix], ...] = (
    ("in the tax table on the mappings page", Fix.TAX_TABLE),
    ("to it in the tax table", Fix.TAX_TABLE),
    ("or remove its override", Fix.MAPPINGS),
)


@functools.lru_cache(maxsize=1024)
def advise(error_class: str | None, provider: str, text: str | None) -> Advice:
    """Return the plain words, provider text and fix for a held record's last error.

    The answer depends on its arguments alone, so each distinct error is looked up in the catalogue
    once (a failure list shows the same few hundred causes on every request).
    """
    plain, said = split_text(provider, text)
    if said and error_class == ErrorClass.NOT_SUPPORTED.value:
        # The provider says nothing here: the words are Ledgerlink's own (the step to do by hand).
        plain, said = f"{plain} {said}", None
    entry = errors_catalog.lookup(provider, None, None, said or plain) if (said or plain) else None
    if entry is not None and error_class and entry.error_class.value != error_class:
        entry = None
    fix = entry.fix if entry is not None else BY_CLASS.get(error_class or "", Fix.RECORD)
    own = next((f for words, f in OWN_HOLDS if words in plain), None) if not said else None
    fix = own or fix
    default_endpoint, default_label = SCREENS.get(fix.value, (None, "Fix the cause, then retry"))
    # The catalogue names the screen of each fix; a screen reached by a button (POST) is linked
    # through the page that holds the button.
    endpoint, label = getattr(fix, "endpoint", None), getattr(fix, "label", None)
    params = tuple(getattr(fix, "params", ("connection_id",)))
    if endpoint is None or getattr(fix, "method", "GET") != "GET":
        endpoint, label, params = default_endpoint, default_label, ("connection_id",)
    if getattr(fix, "in_ledger", False) or fix is Fix.LEDGER_PERIODS:
        label = default_label
    return Advice(
        plain or (entry.explanation if entry is not None else "No error was recorded."),
        said,
        label or default_label,
        endpoint,
        () if endpoint == "ops.dashboard" else params,
        getattr(fix, "anchor", None) if endpoint == getattr(fix, "endpoint", None) else None,
    )
