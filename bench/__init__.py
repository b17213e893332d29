"""Data path (benchmark): measures our gateways against nginx; entry point ``bench/run.py``."""
