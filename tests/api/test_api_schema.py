"""The API against its own OpenAPI document, with schemathesis: generated requests (valid
and not) to every operation, sent in-process to the ASGI application with alice's token. No
answer is a server error; every answer has a documented status, content type and body.

Path ids are alice's own (a random id only ever finds nothing, which the ownership tests
cover), so generated bodies and queries reach the actions themselves. Operations that would
take the world away from the next examples (deletes) or stream (events) are left out here;
tests/api/test_api_input.py and test_api_review_turn.py cover them.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from personaweb.asgi import application
from personaweb.compare.setup import ContenderSpec, create_comparison
from tests.api.conftest import bearer
from tests.web.test_views import chain

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 12
"""Examples per operation: enough to find the odd value, few enough for seconds per run."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def world(alice, make_session):
    session = make_session(alice)
    nodes = chain(session, 3)
    comparison = create_comparison(
        alice,
        session.character,
        ["Hi"],
        [ContenderSpec("single"), ContenderSpec("nested")],
        blind=True,
    )
    return {
        "sessions": session.pk,
        "characters": session.character_id,
        "comparisons": comparison.pk,
        "node": nodes[1].id,
    }


def test_every_operation_answers_as_its_schema_says(world, alice_token, llm_server):
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", application).exclude(
        method="DELETE"
    )
    schema = schema.exclude(operation_id="session_events")
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # the walk found the API

    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case):
            collection = case.operation.path.split("/")[2]  # /api/<collection>/...
            if "pk" in (case.path_parameters or {}):
                case.path_parameters["pk"] = world[collection]
            if (
                "node_id" in (case.path_parameters or {})
                and len(case.path_parameters["node_id"]) % 2
            ):
                case.path_parameters["node_id"] = world["node"]
            case.call_and_validate(headers=bearer(alice_token), checks=CHECKS)

        try:
            check()
        except Exception as exc:  # every failing operation, not just the first
            failures.append(f"{operation.label}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
