"""Property-based run of the JSON API from its own OpenAPI document (schemathesis): whatever an
authenticated client sends to any operation, the app never answers with a server error, and
without a token every operation answers 401."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.usefixtures("loopback_only")


def test_no_server_errors_for_an_admin(world):
    """Every operation, many generated requests each (schemathesis strategies driven by hypothesis)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", world.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    headers = {"Authorization": f"Bearer {world.tokens['admin']}"}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case) -> None:
            response = case.call(headers=headers)
            case.validate_response(response, checks=[not_a_server_error])

        run()


def test_every_api_operation_answers_401_without_a_token(world, clients):
    doc = clients["anonymous"].get("/openapi.json").json()
    operations = [(method.upper(), path) for path, item in doc["paths"].items() for method in item
                  if path.startswith("/api/")]
    assert len(operations) >= 25
    for method, path in operations:
        url = path.replace("{match_id}", "1").replace("{reference}", "NC-AAAA-AAAA").replace("{name}", "x") \
            .replace("{username}", "x").replace("{token_id}", "1")
        r = clients["anonymous"].request(method, url)
        assert r.status_code == 401, (method, path, r.status_code)
    # the documentation itself is public, and only /docs relaxes the CSP (for Swagger UI's assets)
    docs = clients["anonymous"].get("/docs")
    assert docs.status_code == 200 and "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert "cdn" not in clients["anonymous"].get("/login").headers["content-security-policy"]
