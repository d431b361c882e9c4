"""Property-based fuzzing of the JSON API (and the UWS routes documented
in the same OpenAPI document) with schemathesis, against a live server.

Bounded: a few examples per operation, so it fits the suite (150 per
operation also pass; see docs/operations.md). Checks: all of schemathesis'
checks — no 5xx; status codes, content types, headers and bodies as the
document gives them; schema-valid requests accepted and schema-invalid ones
refused; 405 with a true ``Allow``. The document is exact enough for that
(`phaser.handlers.openapi`).
(schemathesis' pytest plugin does not run under pytest 9, so the
operations are driven with hypothesis directly.)
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conftest import Stack


def _sync_timeout(response: Any) -> bool:
    """The answer is the documented 504 of a sync creation that timed out."""
    if response.status_code != 504:
        return False
    try:
        problem = response.json()
    except ValueError:
        return False
    return bool(
        isinstance(problem, dict)
        and problem.get("type") == "urn:phaser:problem:sync-timeout"
    )


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
            # No checks named: every check schemathesis has (no 5xx,
            # status codes, content types, headers and bodies as
            # documented, schema-valid data accepted and invalid data
            # refused, Allow headers, unsupported methods, …). One
            # exception: the multipart creation's ``job`` part is JSON
            # text, whose schema a string cannot carry for the generator,
            # so "schema-valid" random text is not a valid job there (its
            # inputs are generated properly in test_hostile's uploads).
            excluded: list[Any] = (
                [positive_data_acceptance]
                if case.operation.path == "/api/v1/jobs/multipart"
                else []
            )
            response = case.call(base_url=stack.url, timeout=30)
            if _sync_timeout(response):
                # A generated ``?sync=true`` creation of a long job (a
                # sleep of hours) ends in the documented 504 sync timeout:
                # a 5xx by design; every other check still applies.
                excluded.append(not_a_server_error)
            case.validate_response(response, excluded_checks=excluded)

        check()
    # Every operation was really exercised, several times.
    assert calls >= 5 * len(operations)
