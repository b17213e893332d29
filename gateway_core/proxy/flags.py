"""Data path: Envoy-style response flags, written to the access log and metrics."""

from __future__ import annotations

from enum import StrEnum


class ResponseFlag(StrEnum):
    NO_ROUTE = "NR"
    NO_CLUSTER = "NC"
    NO_HEALTHY_UPSTREAM = "UH"
    UPSTREAM_OVERFLOW = "UO"
    UPSTREAM_CONNECT_FAILURE = "UF"
    UPSTREAM_TIMEOUT = "UT"
    UPSTREAM_CONNECTION_TERMINATION = "UC"
    UPSTREAM_REMOTE_RESET = "UR"
    RETRY_LIMIT_EXCEEDED = "URX"
    FAULT_INJECTED = "FI"
    DELAY_INJECTED = "DI"
    DOWNSTREAM_CONNECTION_TERMINATION = "DC"
    DOWNSTREAM_PROTOCOL_ERROR = "DPE"
    UPSTREAM_PROTOCOL_ERROR = "UPE"
    REQUEST_TIMEOUT = "RT"
    STREAM_IDLE_TIMEOUT = "SI"
    DRAINING = "DR"
    RATE_LIMITED = "RL"
    LOOP_DETECTED = "LD"
    """Not Envoy's: this gateway's loop guard refused the request (508)."""
