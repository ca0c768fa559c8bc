"""The adapter contract and its registry."""

from __future__ import annotations

import pytest

from portal.integrations import base, specs


def test_unknown_provider_raises():
    with pytest.raises(specs.UnknownProvider, match="xero"):
        base.get_adapter_class("xero")
    with pytest.raises(specs.UnknownProvider):
        base.register("xero")


def test_provider_without_adapter_module_yet_raises_unknown_provider(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", {})
    monkeypatch.setitem(base.ADAPTER_MODULES, "bexio", "no_such_adapter")
    with pytest.raises(specs.UnknownProvider, match="no adapter for 'bexio' yet"):
        base.get_adapter_class("bexio")


@pytest.mark.parametrize("provider", list(specs.PROVIDERS))
def test_every_provider_has_an_instantiable_adapter(provider):
    adapter = base.get_adapter_class(provider)(http=None, client_id="c", client_secret="s")
    assert adapter.provider == provider
    assert isinstance(adapter, base.LedgerAdapter)


def test_registered_adapter_is_found_and_must_implement_the_contract(monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", {})

    @base.register("quickbooks")
    class Incomplete(base.LedgerAdapter):
        pass

    assert base.get_adapter_class("quickbooks") is Incomplete
    assert Incomplete.spec is specs.QUICKBOOKS_SPEC
    with pytest.raises(TypeError, match="abstract"):
        Incomplete(http=None, client_id="c", client_secret="s")


def test_errors_carry_provider_facts_and_retry_flags():
    error = base.Rejected(provider="quickbooks", status=400, provider_code="6240", provider_text="Duplicate Name")
    assert str(error) == "Duplicate Name (provider=quickbooks, status=400, code=6240)"
    assert not error.retryable
    assert base.Unavailable().retryable and base.AuthExpired().retryable
    assert issubclass(base.NotFound, base.Rejected) and issubclass(base.Forbidden, base.Rejected)
    assert base.NeedsReauthorization(reason="invalid_grant").reason == "invalid_grant"
