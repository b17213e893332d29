"""Shared: TLS helpers used by both the listeners (server/) and upstream origination (upstream/)."""
