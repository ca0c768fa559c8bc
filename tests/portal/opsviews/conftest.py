"""The operation-log suite's fixtures: connected organizations through the sandbox and an ops client."""

from __future__ import annotations

from tests.portal.oplog.conftest import (  # noqa: F401 - fixtures
    add_operations,
    connect,
    flow,
    make_invoice,
    ops_client,
    org_unit,
    sandbox,
)
