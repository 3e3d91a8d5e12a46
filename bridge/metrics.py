"""Prometheus metrics of one bridge instance (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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
            "Inbound SMS by gateway, route and outcome: posted, dropped (a drop route) or "
            "unrouted (no route took it; stored, not posted)",
            ["gateway", "route", "outcome"],
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
