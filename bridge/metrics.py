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

        # The watchdog (bridge/watchdog.py), set by the instance that owns the gateway's duty.
        self.gateway_healthy = Gauge(
            "smsbridge_gateway_healthy",
            "1 when the gateway's watchdog has no open incident, 0 when it has one or more",
            ["gateway"],
            registry=r,
        )
        self.gateway_incident = Gauge(
            "smsbridge_gateway_incident",
            "1 while an incident of this kind is open (offline, battery_low, silent, "
            "sends_failing, api_down)",
            ["gateway", "kind"],
            registry=r,
        )
        self.gateway_battery = Gauge(
            "smsbridge_gateway_battery_percent",
            "Battery of a gateway's phone, where the vendor reports it",
            ["gateway", "device"],
            registry=r,
        )
        self.gateway_last_inbound = Gauge(
            "smsbridge_gateway_last_inbound_timestamp_seconds",
            "Unix time of the newest inbound SMS stored for the gateway",
            ["gateway"],
            registry=r,
        )
        self.watchdog_alerts = Counter(
            "smsbridge_watchdog_alerts_total",
            "Watchdog messages posted, by gateway, incident kind and event (alert, recovered)",
            ["gateway", "kind", "event"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
