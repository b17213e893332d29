"""Tier2 gateway: role defaults and entry points over the shared gateway_core."""
