"""Data path: protocol codecs that turn wire bytes into events and events into wire bytes."""
