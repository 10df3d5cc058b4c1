"""Event handlers of the notify service, keyed by (event type, version)."""

from teamkit.kafka import HandlerRegistry

registry = HandlerRegistry()
