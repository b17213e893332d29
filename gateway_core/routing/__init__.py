"""Data path: request matching against the compiled route tables (no I/O, no mutation)."""
