"""Property-based fuzzing of the JSON API (and the UWS routes documented
in the same OpenAPI document) with schemathesis, against a live server.

Bounded: a few examples per operation, so it fits the suite. Checks: no 5xx
answer, and every answer matches the response schema the document gives.
(schemathesis' pytest plugin does not run under pytest 9, so the
operations are driven with hypothesis directly.)
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from conftest import Stack


def test_api_answers_no_5xx_and_matches_its_schema(stack: Stack) -> None:
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    # An operation schemathesis could not read would be an Err, without
    # ok(): the test fails on it.
    operations = [
        result.ok()  # type: ignore[union-attr]
        for result in schema.get_all_operations()
    ]
    assert len(operations) >= 20
    calls = 0
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(
                base_url=stack.url,
                checks=[not_a_server_error, response_schema_conformance],
                timeout=30,
            )

        check()
    # Every operation was really exercised, several times.
    assert calls >= 5 * len(operations)
