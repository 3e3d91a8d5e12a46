"""SMSGate credentials as request headers: Basic, a given bearer token, or a JWT kept fresh."""

from __future__ import annotations

import asyncio
import base64
import time

import httpx

from bridge.errors import Retryable
from connectors.http import request_json
from connectors.sms.smsgate.config import LABEL, SmsGateConfig
from connectors.webhooks import iso_time

JWT_SCOPES = ("messages:send", "messages:read", "messages:list", "inbox:list", "webhooks:write")
JWT_TTL = 3600


class Auth:
    """The ``Authorization`` header of one SMSGate account; a JWT is obtained on first use."""

    def __init__(self, config: SmsGateConfig) -> None:
        self.config = config
        self._jwt: tuple[str, float] | None = None  # (token, expires at, unix)
        self._jwt_lock = asyncio.Lock()

    async def headers(self, client: httpx.AsyncClient, renew: bool = False) -> dict[str, str]:
        config = self.config
        if config.auth == "basic":
            assert config.username is not None
            assert config.password is not None
            raw = f"{config.username}:{config.password.get_secret_value()}".encode()
            return {"Authorization": f"Basic {base64.b64encode(raw).decode()}"}
        if config.token is not None:
            return {"Authorization": f"Bearer {config.token.get_secret_value()}"}
        async with self._jwt_lock:
            if renew or self._jwt is None or self._jwt[1] - 60 < time.time():
                self._jwt = await self._new_jwt(client)
            return {"Authorization": f"Bearer {self._jwt[0]}"}

    async def _new_jwt(self, client: httpx.AsyncClient) -> tuple[str, float]:
        assert self.config.username is not None
        assert self.config.password is not None
        body = await request_json(
            client,
            "POST",
            "/auth/token",
            label=LABEL,
            auth=(self.config.username, self.config.password.get_secret_value()),
            json={"ttl": JWT_TTL, "scopes": list(JWT_SCOPES)},
        )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise Retryable(f"{LABEL} answered the token request without an access_token")
        expires = iso_time(body.get("expires_at"))
        return token, expires.timestamp() if expires else time.time() + JWT_TTL
