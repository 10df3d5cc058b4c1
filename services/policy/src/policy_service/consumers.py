"""Event handlers of the policy service, keyed by (event type, version)."""

from teamkit.kafka import HandlerRegistry

registry = HandlerRegistry()
