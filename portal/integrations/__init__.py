"""Ledger adapters: provider facts, one HTTP layer, typed errors, token crypto, error catalogue.

Modules (see DESIGN.md "The adapter contract"): ``specs`` (provider facts as data), ``base``
(contract, value types, errors, registry), ``http`` (the one HTTP session), ``tokens`` (token
encryption), ``errors_catalog`` (provider error → plain words + the screen that fixes it), and
one adapter per provider: ``exact_online``, ``quickbooks``, ``bexio`` (found via ``base.get_adapter_class``).
"""
