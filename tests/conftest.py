"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from tests.sandbox_server import ServedApp


@pytest.fixture(scope="session")
def sandbox_server():
    """The provider sandbox served over real HTTP for the whole session; yields its base URL."""
    import sandbox

    served = ServedApp(sandbox.create_app())
    yield served.url
    served.close()
