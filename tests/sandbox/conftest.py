"""Fixtures for the emulator tests: one sandbox served over real HTTP, reset per test."""

from __future__ import annotations

import pytest
import requests


@pytest.fixture
def sandbox_url(sandbox_server: str) -> str:
    """Base URL of a freshly reset sandbox (default demo data, quotas on, no faults)."""
    requests.post(f"{sandbox_server}/_control/reset", timeout=10).raise_for_status()
    return sandbox_server
