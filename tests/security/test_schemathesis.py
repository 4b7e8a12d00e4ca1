"""Schemathesis over the booking API's own OpenAPI document: every check, bounded in time.

The run uses all of schemathesis' checks -- server errors, status codes, content types, response
schemas, negative and positive data, unsupported methods, and the auth checks (``ignored_auth``
sends each request without its token and expects a refusal). A few (operation, check) pairs are
configured below, each for the API's documented semantics written next to it (an expired join
link is 410 Gone). The bugs schemathesis found are fixed; each keeps a regression test below.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from conftest import ServedNode

ST = Path(sys.executable).parent / "st"
MAX_SECONDS = 45  # fuzzing and stateful phases repeat until this budget is spent
MAX_EXAMPLES = 10

CONFIG = """
[checks]
# Every check schemathesis has, including ignored_auth (auth must be enforced) and
# use_after_free / ensure_resource_availability (stateful: deleted things stay deleted).
enabled = true

[[operations]]
include-path = "/j/{token}"
# A capability link whose meeting has ended is 410 Gone: a schema-valid token, rightly refused.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "410"]

[[operations]]
include-path = ["/api/v1/meetings", "/api/v1/meetings/{meeting_id}", "/api/v1/permanent-rooms"]
include-method = ["POST", "PATCH"]
# Well-formed but impossible bookings are 422 -- a planned meeting without start and end time,
# a PATCH that changes nothing, an organiser who is not a user of the organisation: rules
# JSON Schema cannot state.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


def require_schemathesis() -> None:
    if ST.exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail("schemathesis is not installed: pip install -e '.[test]'")
    pytest.skip("schemathesis is not installed")


async def test_schemathesis_finds_no_failures(served: ServedNode, tmp_path: Path) -> None:
    require_schemathesis()
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    process = await asyncio.create_subprocess_exec(
        str(ST), "--config-file", str(config), "run", f"{served.url}/openapi.json",
        "--max-examples", str(MAX_EXAMPLES), "--max-time", str(MAX_SECONDS),
        "--workers", "1", "--seed", "20261122", "--request-timeout", "10",
        "--header", f"Authorization: Bearer {served.admin.token}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        # The node serves from this very event loop: never block it while schemathesis runs.
        env={**os.environ, "NO_COLOR": "1"})
    output, _ = await asyncio.wait_for(process.communicate(), MAX_SECONDS + 120)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-12000:]
    assert "Tested: " in text
    tested = int(text.split("Tested: ", 1)[1].split()[0])
    assert tested >= 25, text[-3000:]  # every booking-API operation was exercised


# Regression tests for what schemathesis found (all fixed).


async def test_fixed_bug_405_allow_lists_every_method(served: ServedNode) -> None:
    async with served.http() as http:
        response = await http.request("OPTIONS", "/api/v1/templates",
                                      headers=served.admin.headers)
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


async def test_fixed_bug_a_number_is_not_a_date_time(served: ServedNode) -> None:
    async with served.http() as http:
        response = await http.get("/api/v1/meetings", params={"to": "0.5"},
                                  headers=served.admin.headers)
    assert response.status_code == 422


async def test_fixed_bug_a_boolean_is_not_an_integer(served: ServedNode) -> None:
    async with served.http() as http:
        response = await http.post("/api/v1/templates", headers=served.admin.headers,
                                   json={"name": "Standard", "open_before_minutes": False})
    assert response.status_code == 422


async def test_fixed_bug_a_webhook_url_must_be_a_url(served: ServedNode) -> None:
    async with served.http() as http:
        response = await http.put("/api/v1/webhook", headers=served.admin.headers,
                                  json={"url": "http://["})
    assert response.status_code == 422


async def test_error_statuses_are_documented_on_every_operation(served: ServedNode) -> None:
    async with served.http() as http:
        spec = (await http.get("/openapi.json")).json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            assert {"401", "403", "404", "409"} <= documented, (method, path, documented)
