"""Canonical data models of mappa-broker.

Frozen, strict pydantic models for the envelope, every message type, the trust
directory, information-sharing agreements and audit events. This package imports
nothing else of ours, so every other part can depend on it.
"""
