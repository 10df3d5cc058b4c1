"""Event handlers of the lifecycle service, keyed by (event type, version)."""

from teamkit.kafka import HandlerRegistry

registry = HandlerRegistry()
