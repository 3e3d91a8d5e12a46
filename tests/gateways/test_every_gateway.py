"""What every registered gateway must do, run for each entry of the registry against its fake.

A new gateway gets these by its registry line; its own contract test module covers the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import GROUP, telegram_section

from bridge.models import OutboundSms
from bridge.ports import ReceivesWebhooks
from bridge.testing.fake_harness import Started, bridge_config, running_bridge
from connectors import GATEWAYS
from connectors.chat.telegram.fake import FakeTelegram

# Settings some gateways need beyond the fake's credentials to take webhooks or to send; each
# gateway gets those its config model knows.
EXTRA: dict[str, Any] = {
    "webhook_token": "every-gateway-token-0123456789",
    "signing_key": "every-gateway-signing-key",
    "sender": "Shop",
    "from_number": "+15017122661",  # the fake Twilio account's number (the one of its docs)
    "devices": [{"device_id": 260}],
    "region": "US",
}
CUSTOMER = "+15551234567"


def webhook_section(name: str, fake: Any) -> dict[str, Any]:
    """The fake's config section, receiving by webhook, with what its model also asks for."""
    fields = GATEWAYS[name].config.model_fields
    extra = {key: value for key, value in EXTRA.items() if key in fields}
    section: dict[str, Any] = fake.section(name, **extra) | {"receive": "webhook"}
    return section


@pytest.mark.parametrize("name", sorted(GATEWAYS))
async def test_a_webhook_without_credentials_is_refused_and_changes_nothing(
    name: str, tmp_path: Path, telegram: FakeTelegram
) -> None:
    telegram.add_forum(GROUP, "Support")
    async with GATEWAYS[name].fake() as fake:
        section = webhook_section(name, fake)
        config = bridge_config(tmp_path, section, telegram_section(telegram))
        async with running_bridge(config) as bridge, httpx.AsyncClient(trust_env=False) as http:
            url = f"http://127.0.0.1:{bridge.port}/webhooks/sms/{name}"
            answer = await http.post(url, json={"from": CUSTOMER, "message": "let me in"})
            assert answer.status_code in (401, 403), answer.text
            assert set(answer.json()) == {"error"}
            assert bridge.store is not None
            assert (await bridge.store.backlog())["chat_jobs"] == {}
        assert telegram.topics(GROUP) == []


@pytest.mark.parametrize("name", sorted(GATEWAYS))
async def test_the_registry_builds_a_gateway_that_sends_through_its_fake(name: str) -> None:
    kind = GATEWAYS[name]
    async with kind.fake() as fake, Started() as started:
        config = kind.config.model_validate(webhook_section(name, fake))
        gateway = await started(kind.factory(config, "http://127.0.0.1:9/webhooks/sms/x"))
        assert isinstance(gateway, ReceivesWebhooks)
        before = len(fake.requests)
        first = await gateway.send(OutboundSms(id=1, to=CUSTOMER, text="Your order is ready"))
        second = await gateway.send(OutboundSms(id=2, to=CUSTOMER, text="See you at 5"))
        assert len(fake.requests) > before
        assert first.provider_id and second.provider_id
        assert first.provider_id != second.provider_id
