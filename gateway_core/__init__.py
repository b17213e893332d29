"""Shared core of the two-tier multi-cluster gateway (used by tier1_gateway and tier2_gateway)."""

__version__ = "0.1.0"
