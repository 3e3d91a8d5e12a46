"""GET /openapi.json follows the config: only what this bridge serves, as it serves it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from conftest import HOOK_TOKEN, Harness


async def test_only_the_endpoints_the_config_serves_are_documented(
    start_bridge: Callable[..., Any],
) -> None:
    # The plain webhook only (no secret: no signed one), and Telegram polling (no webhook).
    harness: Harness = await start_bridge(gateway={"webhook_secret": None})
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        document = (await http.get(f"{harness.base}/openapi.json")).json()
        signed = await http.post(f"{harness.base}/webhooks/sms/office", content=b"{}")
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/webhooks/sms/office/{token}",
        "/healthz",
        "/metrics",
        "/openapi.json",
    }
    operation = document["paths"]["/webhooks/sms/office/{token}"]["post"]
    assert operation["security"] == []  # the URL token guards it: a path parameter
    assert [p["name"] for p in operation["parameters"]] == ["token"]
    assert HOOK_TOKEN not in str(document)
    assert document["components"]["securitySchemes"] == {}
    # What is not documented is not served.
    assert signed.status_code == 404
    assert "error" in signed.json()


async def test_a_method_the_gateway_does_not_take_is_405_with_allow(
    harness: Harness,
) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        response = await http.get(harness.plain_hook)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json() == {"error": "Method Not Allowed"}
