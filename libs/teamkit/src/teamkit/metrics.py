"""Prometheus metrics of one service, on a registry of its own (apps may share a process)."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ServiceMetrics:
    """The metric families every service exposes on `/metrics`."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.events_consumed = Counter(
            "events_consumed_total",
            "Events consumed by type and outcome (applied, duplicate, ignored, dead_lettered).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.handler_retries = Counter(
            "event_handler_retries_total",
            "Handler attempts that failed and were retried.",
            ["type"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "consumer_lag_messages",
            "Messages behind the high watermark, per topic partition.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.outbox_published = Counter(
            "outbox_published_total",
            "Outbox rows published to Kafka.",
            registry=self.registry,
        )
