"""Control path: base model for the Istio-shaped API types and the shared value types.

Every API message is a frozen pydantic model that rejects unknown fields and reads the
camelCase names Istio's YAML uses (``consecutive5xxErrors``), while Python code uses
snake_case. Durations follow Istio's YAML (``"1s"``, ``"0.5s"``, ``"3m"``, ``"1h30m"``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base for every Istio API message: frozen, strict, unknown fields rejected."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=False,
        hide_input_in_errors=True,
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(value: object) -> float:
    """Parse an Istio/Go duration string into seconds.

    ``"1.5s"`` -> 1.5, ``"3m"`` -> 180.0, ``"1h30m"`` -> 5400.0, ``"500ms"`` -> 0.5.
    Raises ValueError for anything else (numbers without a unit are rejected, as in Istio).
    """
    if not isinstance(value, str):
        raise ValueError("duration must be a string such as '1s', '500ms' or '3m'")
    text = value.strip()
    if not text:
        raise ValueError("duration must not be empty")
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"invalid duration {value!r}: use a number and a unit (ms, s, m, h)")
    return total


def format_duration(seconds: float) -> str:
    """Inverse of parse_duration for dumps: 1.5 -> "1.5s"."""
    return f"{seconds:g}s"


Lax = Field(strict=False)
"""Marks enum fields: YAML gives the enum's name as a string, which strict mode would refuse."""


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""Seconds, read from an Istio duration string."""


__all__ = ["ApiModel", "Duration", "Lax", "format_duration", "parse_duration"]
