"""bexio emulator (placeholder until the full emulator lands)."""

from ..core.provider import ProviderEmulator


class BexioEmulator(ProviderEmulator):
    name = "bexio"

    def register(self, app):
        pass

    def reset(self):
        pass

    def companies(self):
        return []
