"""Event handlers of the request service, keyed by (event type, version)."""

from teamkit.kafka import HandlerRegistry

registry = HandlerRegistry()
