"""Listing every ledger customer page by page, archived ones included, against the sandbox."""

from __future__ import annotations

import pytest

from portal.integrations import specs
from portal.integrations.base import CustomerDraft, LedgerAdapter, NotSupported

from . import test_bexio_adapter, test_exact_online_adapter, test_quickbooks_adapter
from .conftest import control


def _count_pages(adapter) -> list[str]:
    """Record every GET the adapter makes (one per page)."""
    calls: list[str] = []
    real = adapter._call

    def counting(method, url, **kwargs):
        if method == "GET":
            calls.append(url)
        return real(method, url, **kwargs)

    adapter._call = counting
    return calls


def test_exact_lists_every_sales_account_following_next(sandbox, make_adapter):
    adapter, _ = test_exact_online_adapter._connect(sandbox, make_adapter, "nl", [])
    adapter.company_id = "3010001"
    adapter.create_customer(CustomerDraft(reference="x", name="Zwart Logistiek B.V.", vat_number="NL123456782B01"))
    control(sandbox, "exact-online/set_settings", {"page_size": 2})
    try:
        calls = _count_pages(adapter)
        found = list(adapter.iter_customers())
    finally:
        control(sandbox, "exact-online/set_settings", {"page_size": 60})
    names = [c.name for c in found]
    assert "Bakkerij Jansen B.V." in names and "Zwart Logistiek B.V." in names
    assert len(found) == 4 and len({c.id for c in found}) == 4
    assert len(calls) == 2  # 2 + 2 rows, the second page without __next
    zwart = next(c for c in found if c.name.startswith("Zwart"))
    assert zwart.vat_number == "NL123456782B01" and zwart.active


def test_quickbooks_lists_inactive_customers_too_in_pages(sandbox, make_adapter):
    adapter, _ = test_quickbooks_adapter._connect(sandbox, make_adapter, [])
    calls = _count_pages(adapter)
    found = list(adapter.iter_customers(page_size=3))
    by_name = {c.name: c for c in found}
    assert len(found) == 7 and len(calls) == 3  # 3 + 3 + 1
    assert by_name["Jeff's Jalopies"].active is False
    assert by_name["Amy's Bird Sanctuary"].active is True


def test_bexio_lists_contacts_by_offset_and_hides_deleted(sandbox, make_adapter):
    adapter, _ = test_bexio_adapter._connect(sandbox, make_adapter, [])
    calls = _count_pages(adapter)
    found = list(adapter.iter_customers(page_size=2))
    assert len(found) == 7 and len(calls) == 4  # 2 + 2 + 2 + 1
    assert [c.id for c in found] == [str(i) for i in range(1, 8)]
    assert next(c for c in found if c.id == "4").email == "info@meier-treuhand.example"
    adapter._call("DELETE", "https://api.bexio.com/2.0/contact/4")
    assert "4" not in {c.id for c in adapter.iter_customers(page_size=2)}


def test_the_contract_default_says_not_supported():
    class Partial(LedgerAdapter):
        provider = specs.BEXIO
        spec = specs.get_spec(specs.BEXIO)

    for name in list(Partial.__abstractmethods__):
        setattr(Partial, name, lambda *a, **k: None)
    Partial.__abstractmethods__ = frozenset()
    adapter = Partial(http=None, client_id="c", client_secret="s")
    with pytest.raises(NotSupported):
        next(adapter.iter_customers())
