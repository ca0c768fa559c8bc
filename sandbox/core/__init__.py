"""Shared machinery of the provider emulators: clock, state, quotas, faults, OAuth clients.

Each provider package (``sandbox.exact``, ``sandbox.quickbooks``, ``sandbox.bexio``) builds on
these pieces and registers itself as a :class:`ProviderEmulator` with :func:`sandbox.create_app`.
"""
