"""Event handlers of the audit service, keyed by (event type, version)."""

from teamkit.kafka import HandlerRegistry

registry = HandlerRegistry()
