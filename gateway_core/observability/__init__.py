"""Observability: metrics and access logs (written by the data path, read by the admin server)."""
