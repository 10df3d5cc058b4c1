"""Routers of the audit API."""
