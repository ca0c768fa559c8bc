"""Exact Online emulator (placeholder until the full emulator lands)."""

from ..core.provider import ProviderEmulator


class ExactOnlineEmulator(ProviderEmulator):
    name = "exact-online"

    def register(self, app):
        pass

    def reset(self):
        pass

    def companies(self):
        return []
