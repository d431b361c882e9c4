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
from schemathesis.specs.openapi.checks import positive_data_acceptance

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
            case.call_and_validate(
                base_url=stack.url, timeout=30, excluded_checks=excluded
            )

        check()
    # Every operation was really exercised, several times.
    assert calls >= 5 * len(operations)
