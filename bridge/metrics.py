"""Prometheus metrics of one bridge instance (its own registry, so tests can run several).

Label values are names from the config (gateways, chats) or short codes from a fixed list,
never free text: every distinct value is a time series kept for good by Prometheus, and error
texts carry numbers, ids and the remote's own words.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bridge.errors import (
    Ambiguous,
    DeliveryError,
    RateLimited,
    Retryable,
    Terminal,
    ThreadClosed,
    ThreadGone,
    Unavailable,
    WebhookRejected,
)

# The queues of smsbridge_queue_depth / smsbridge_queue_oldest_seconds: a chat's jobs other
# than status reactions, a gateway's outbox, and a chat's status reactions.
QUEUES = ("chat_posts", "outbound_sms", "status_jobs")

# Set by the gateway watchdog (bridge/watchdog.py); registered here so there is one registry
# and one place that names every metric (deploy/ alert rules and dashboard refer to them).
WATCHDOG_METRICS = (
    "smsbridge_gateway_healthy",
    "smsbridge_gateway_incident",
    "smsbridge_gateway_battery_percent",
    "smsbridge_gateway_last_inbound_timestamp_seconds",
    "smsbridge_watchdog_alerts_total",
)

# Every value the ``reason`` label of smsbridge_errors_total can take.
REASONS = frozenset(
    {
        "unavailable",  # the destination refuses us as a whole (bot removed, chat gone)
        "rate_limited",  # 429 or the platform's retry_after
        "auth",  # credentials or token refused
        "rejected",  # the remote refused this request for good (4xx, invalid number …)
        "thread_gone",
        "thread_closed",
        "unreachable",  # no connection
        "timeout",
        "http_5xx",
        "bad_answer",  # an answer we could not make sense of
        "ambiguous",  # may or may not have acted
        "retryable",  # another temporary failure
        "internal",  # a bug on our side (logged with its traceback)
        # webhook refusals
        "not_found",
        "bad_request",
        "invalid",
        "unauthenticated",
        "forbidden",
        "too_large",
        "store_failed",
    }
)

# "(HTTP 502)" from connectors/http.py; PTB passes on only the reason phrase.
_HTTP_5XX = re.compile(
    r"(?:http |\()5\d\d\b|internal server error|bad gateway|service unavailable|gateway timeout"
)
_WEBHOOK_REASONS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    413: "too_large",
    422: "invalid",
}


def reason_of(exc: BaseException) -> str:
    """A short stable code for a failure (one of ``REASONS``), from its class and, for the
    generic ones, a few words every connector uses (bridge/errors.py, connectors/http.py)."""
    if isinstance(exc, WebhookRejected):
        return _WEBHOOK_REASONS.get(exc.status, "bad_request")
    if isinstance(exc, ThreadGone):
        return "thread_gone"
    if isinstance(exc, ThreadClosed):
        return "thread_closed"
    if not isinstance(exc, DeliveryError):
        return "internal"
    if isinstance(exc, Unavailable):
        return "unavailable"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    text = exc.reason.lower()
    if isinstance(exc, Terminal):
        auth = exc.raw_status in ("401", "403") or "credentials" in text or "token" in text
        return "auth" if auth else "rejected"
    if _HTTP_5XX.search(text):
        return "http_5xx"
    if "unreachable" in text or "connection failed" in text:
        return "unreachable"
    if "timed out" in text or "timeout" in text:
        return "timeout"
    if "malformed" in text or "unexpected" in text or " without " in text:
        return "bad_answer"
    if isinstance(exc, Ambiguous):
        return "ambiguous"
    return "retryable" if isinstance(exc, Retryable) else "rejected"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter(
            "smsbridge_inbound_sms_total",
            "Inbound SMS by gateway, how they arrived and whether they were new",
            ["gateway", "source", "result"],
            registry=r,
        )
        self.routed = Counter(
            "smsbridge_routed_sms_total",
            "Inbound SMS by gateway, route and outcome: posted, dropped (a drop route), "
            "unrouted (no route took it; stored, not posted) or blocked (its number is "
            "blocked; stored, not posted)",
            ["gateway", "route", "outcome"],
            registry=r,
        )
        self.opt_outs = Counter(
            "smsbridge_opt_outs_total",
            "Numbers opting out or back in, by gateway and how: stop or start (an SMS keyword), "
            "gateway (its opt-out error on a send)",
            ["gateway", "event"],
            registry=r,
        )
        self.webhook_rejected = Counter(
            "smsbridge_webhook_rejected_total",
            "Webhook requests refused, by HTTP status",
            ["endpoint", "status"],
            registry=r,
        )
        self.sms_sent = Counter(
            "smsbridge_outbound_sms_total",
            "Outbound SMS attempts by gateway and outcome",
            ["gateway", "outcome"],
            registry=r,
        )
        self.chat_posts = Counter(
            "smsbridge_chat_calls_total",
            "Calls to chat platforms by chat, job kind and outcome",
            ["chat", "kind", "outcome"],
            registry=r,
        )
        self.polls = Counter(
            "smsbridge_polls_total",
            "Gateway polls by outcome",
            ["gateway", "kind", "outcome"],
            registry=r,
        )
        self.recovered = Counter(
            "smsbridge_safety_net_recovered_total",
            "Inbound SMS that the safety-net poll found and the webhooks had not delivered",
            ["gateway"],
            registry=r,
        )
        self.backlog = Gauge(
            "smsbridge_backlog", "Pending work in the store", ["queue", "name"], registry=r
        )
        self.duty_active = Gauge(
            "smsbridge_duty_active",
            "1 where this instance owns the duty (a gateway's polling, a chat's posting …), "
            "0 on standby; across a deployment each duty sums to 1",
            ["duty"],
            registry=r,
        )
        self.post_latency = Histogram(
            "smsbridge_chat_post_seconds",
            "From an SMS being stored to its post being accepted by the chat",
            ["chat"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.queue_depth = Gauge(
            "smsbridge_queue_depth",
            "Items waiting in a queue (chat_posts, outbound_sms, status_jobs) per chat or gateway",
            ["queue", "name"],
            registry=r,
        )
        self.queue_oldest = Gauge(
            "smsbridge_queue_oldest_seconds",
            "Age of the oldest item waiting in a queue (0 when it is empty)",
            ["queue", "name"],
            registry=r,
        )
        self.send_latency = Histogram(
            "smsbridge_send_seconds",
            "From an SMS entering the outbox to the gateway accepting it (retries included)",
            ["gateway"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=r,
        )
        self.errors = Counter(
            "smsbridge_errors",
            "Failed calls by component (gateway: sends, chat: posts, poll: gateway polls, "
            "webhook: requests refused), name and a short reason code",
            ["component", "name", "reason"],
            registry=r,
        )
        self.pacing_wait = Counter(
            "smsbridge_pacing_wait_seconds",
            "Seconds posts waited for room under the chat platform's rate limits",
            ["chat"],
            registry=r,
        )
        self.poll_lag = Gauge(
            "smsbridge_poll_lag_seconds",
            "Seconds since the last successful poll of a gateway (kind: inbound, status), "
            "on the instance that polls it",
            ["gateway", "kind"],
            registry=r,
        )
        # The watchdog's (see WATCHDOG_METRICS): no series until it sets them.
        self.gateway_healthy = Gauge(
            "smsbridge_gateway_healthy",
            "1 when the gateway has no open incident, 0 when it has at least one",
            ["gateway"],
            registry=r,
        )
        self.gateway_incident = Gauge(
            "smsbridge_gateway_incident",
            "1 while an incident of this kind (offline, battery_low, silent, sends_failing, "
            "api_down) is open",
            ["gateway", "kind"],
            registry=r,
        )
        self.gateway_battery = Gauge(
            "smsbridge_gateway_battery_percent",
            "Battery of the gateway's phone, where the vendor reports it",
            ["gateway", "device"],
            registry=r,
        )
        self.gateway_last_inbound = Gauge(
            "smsbridge_gateway_last_inbound_timestamp_seconds",
            "Unix time of the last inbound SMS stored for the gateway",
            ["gateway"],
            registry=r,
        )
        self.watchdog_alerts = Counter(
            "smsbridge_watchdog_alerts",
            "Watchdog messages posted, by gateway, incident kind and event (alert, recovered)",
            ["gateway", "kind", "event"],
            registry=r,
        )
        self._errors: dict[tuple[str, str, str], Counter] = {}

    def error(self, component: str, name: str, exc: BaseException) -> None:
        """Count a failure under its reason code (labelled children cached: a failing gateway
        can fail every send)."""
        key = (component, name, reason_of(exc))
        child = self._errors.get(key)
        if child is None:
            child = self._errors[key] = self.errors.labels(*key)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
