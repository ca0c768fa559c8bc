"""The served OpenAPI description, fuzzed by schemathesis: no server error, every answer as described.

Schemathesis loads ``/api/v1/openapi.json`` from the app over WSGI and generates requests for every
operation; each answer is checked against the description (status code documented, body conforming
to its schema, content type) and for server errors.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.proof.conftest import scaled

EXAMPLES = scaled(6, 150)

#: Every check except ``positive_data_acceptance``: a schema-valid body may still name an organization
#: or invoice that does not exist, which is a precise 422, not a contract breach.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.ignored_auth,
    schemathesis.checks.unsupported_method,
]


@pytest.mark.slow
def test_the_api_answers_as_its_description_says(app, api_key, org_external):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {api_key}"}
    checked: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy(), real_org=st.booleans())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def exercise(case, real_org):
            # Half the examples address the real organization, so validators and upserts run, not only 404s.
            if real_org and "org_id" in (case.path_parameters or {}):
                case.path_parameters["org_id"] = org_external["external_id"]
            case.call_and_validate(headers=headers, checks=CHECKS)

        exercise()
        checked.append(operation.label)
    assert len(checked) >= 10, checked
