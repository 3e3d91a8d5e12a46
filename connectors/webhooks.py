"""What every gateway webhook shares: the secret URL token, a signed timestamp's window,
reading a JSON object body, and ISO 8601 times."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from bridge.errors import BadRequest, Forbidden, Unauthenticated
from bridge.models import WebhookRequest


def check_url_token(expected: SecretStr, request: WebhookRequest) -> None:
    """For senders that sign nothing, the secret path segment is the credential.

    Compared in constant time, so response timing tells nothing about how much of it matched.
    """
    if request.token is None:
        raise Unauthenticated("missing webhook token in the URL path")
    if not hmac.compare_digest(request.token.encode(), expected.get_secret_value().encode()):
        raise Forbidden("unknown webhook token")


def check_timestamp(stamp: str, received_at: float, max_skew: float, header: str) -> int:
    """The signed unix time in ``header``, refused outside ``max_skew`` (replay protection)."""
    try:
        sent_at = int(stamp)
    except ValueError:
        raise Unauthenticated(f"{header} is not a unix time") from None
    if abs(received_at - sent_at) > max_skew:
        raise Unauthenticated(f"stale or future {header} (replay protection)")
    return sent_at


def json_object(body: bytes) -> dict[str, Any]:
    """A webhook's JSON body, which must be an object; ``BadRequest`` (400) otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("malformed JSON: expected an object")
    return data


def iso_time(value: Any) -> datetime | None:
    """ISO 8601 (``…Z`` or an offset); a time without a zone is taken as UTC. ``None`` for
    anything else."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
