"""QuickBooks Online emulator (placeholder until the full emulator lands)."""

from ..core.provider import ProviderEmulator


class QuickBooksEmulator(ProviderEmulator):
    name = "quickbooks"

    def register(self, app):
        pass

    def reset(self):
        pass

    def companies(self):
        return []
