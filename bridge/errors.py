"""The one exception hierarchy of smsbridge.

    BridgeError
    ├── ConfigError                  the config file is wrong; message names the path
    ├── StoreInUse                   another process runs on this SQLite file
    ├── StoreNotReady                a command found no store, or one of another schema
    ├── WebhookRejected              a webhook request we refuse (4xx; never stored)
    │   ├── BadRequest               malformed JSON, missing field, wrong type      -> 400/422
    │   │   └── InvalidSender        a sender that is no address (a skipped row when polled)
    │   ├── Unauthenticated          bad signature, stale timestamp, unknown token  -> 401/403
    │   └── PayloadTooLarge          body over the limit                            -> 413
    ├── DeliveryError                a call to a gateway or chat platform failed
    │   ├── Retryable                try again later (timeouts, 5xx, 429)
    │   │   ├── RateLimited          the remote told us how long to wait
    │   │   │   └── Unavailable      the destination refuses us as a whole (bot removed…)
    │   │   └── Ambiguous            the remote may have acted (timeout after sending)
    │   └── Terminal                 retrying cannot help (auth, rejected number, 4xx)
    │       └── OptedOut             the gateway says the recipient opted out (Twilio 21610)
    └── ThreadError                  a chat thread cannot take the post as it is
        ├── ThreadGone               deleted by a human: open a new one
        ├── ThreadClosed             closed by a human: reopen it
        └── ThreadsOff               the chat can have no threads now: post with a header

Messages never contain secrets: connectors build them from status codes and the remote's own
error text, never from URLs or request parameters.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error smsbridge raises on purpose."""


class ConfigError(BridgeError):
    """The configuration is invalid; ``problems`` lists ``path: message`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class StoreInUse(BridgeError):
    """Another smsbridge process holds this SQLite store; ``path`` is its file."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"the store {path} is in use by another smsbridge process. SQLite serves one "
            "process; to run several instances, use PostgreSQL "
            "(store.url: postgresql+asyncpg://user@host:5432/db)"
        )


class StoreNotReady(BridgeError):
    """A command run beside the bridge found no store it can use; the message says why."""


class WebhookRejected(BridgeError):
    """A webhook request we refuse; ``status`` is the HTTP status to answer."""

    status = 400

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BadRequest(WebhookRejected):
    status = 400


class Unprocessable(BadRequest):
    status = 422


class InvalidSender(Unprocessable):
    """A sender that is no phone number, short code or sender ID; ``field`` is the vendor's."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__(reason)


class Unauthenticated(WebhookRejected):
    status = 401


class Forbidden(Unauthenticated):
    status = 403


class NotFound(WebhookRejected):
    status = 404


class PayloadTooLarge(WebhookRejected):
    status = 413


class DeliveryError(BridgeError):
    """A remote call failed; ``reason`` is safe to show in chat."""

    def __init__(self, reason: str, *, raw_status: str | None = None) -> None:
        self.reason = reason
        self.raw_status = raw_status
        super().__init__(reason)


class Retryable(DeliveryError):
    """Try again later."""


class RateLimited(Retryable):
    """The remote asked us to wait ``retry_after`` seconds.

    ``key`` names the pacing window the limit applies to, when the remote limits each kind of
    call on its own (Slack's tiers); without it the whole destination waits.
    """

    def __init__(self, reason: str, retry_after: float, key: str | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.key = key


class Unavailable(RateLimited):
    """The destination refuses us as a whole (bot removed, chat gone, token revoked).

    Work for it waits in the store and /healthz reports it down until a call succeeds.
    """


class Ambiguous(Retryable):
    """The remote may or may not have acted; reconcile before retrying."""


class Terminal(DeliveryError):
    """Retrying cannot help."""


class TooLarge(Terminal):
    """A download stopped at its size limit (``FetchesFiles.fetch_file``)."""


class OptedOut(Terminal):
    """The gateway refuses the recipient because it opted out (texted STOP to the gateway's
    number): the core marks the number opted out, as if the STOP had reached us."""


class ThreadError(BridgeError):
    """The chat thread cannot take a post as it is."""


class ThreadGone(ThreadError):
    """The thread was deleted; the core opens a new one."""


class ThreadClosed(ThreadError):
    """The thread was closed; the core reopens it."""


class ThreadsOff(ThreadError):
    """The chat refuses to open threads and has none from now on (a Telegram private chat
    whose topics were turned off, or that Telegram refuses them): the post goes into the
    chat itself, with the header that names its number."""
