"""Data path: the event vocabulary every codec (HTTP/1.1 and HTTP/2) produces and consumes.

The router sees these events and never wire bytes. A head carries its fields as a list of
``(name, value)`` byte pairs with lower-case names and without pseudo-header fields: the
request's ``:method``, ``:scheme``, ``:authority`` and ``:path`` (HTTP/1: the request line and
``Host``) are attributes of :class:`RequestHead`, so an HTTP/2 and an HTTP/1.1 request look
the same. ``host`` is never among a request head's fields; ``authority`` carries it, and an
HTTP/1 codec writes it back as ``Host``. Several ``cookie`` fields arrive joined into one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

Fields = list[tuple[bytes, bytes]]
"""Header fields: lower-case names, in the order received."""


class ErrorCode(enum.IntEnum):
    """RFC 9113 §7 error codes, carried by :class:`Reset`, :class:`GoAway` and failures."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A request's head. ``path`` is the raw request target (path and query)."""

    stream_id: int
    method: bytes
    scheme: bytes
    authority: bytes
    path: bytes
    headers: Fields
    end_stream: bool


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A response's head; a 1xx informational response is one too (``status < 200``)."""

    stream_id: int
    status: int
    headers: Fields
    end_stream: bool


@dataclass(frozen=True, slots=True)
class Data:
    """Body bytes. A receiver hands ``len(data)`` back to its codec once forwarded."""

    stream_id: int
    data: bytes
    end_stream: bool


@dataclass(frozen=True, slots=True)
class Trailers:
    """Trailer fields; they end the stream."""

    stream_id: int
    headers: Fields


@dataclass(frozen=True, slots=True)
class Reset:
    """The stream ended abnormally: reset by the peer (``remote``) or by the codec itself."""

    stream_id: int
    error_code: int
    remote: bool


@dataclass(frozen=True, slots=True)
class GoAway:
    """A GOAWAY: streams above ``last_stream_id`` were not and will not be processed."""

    last_stream_id: int
    error_code: int
    remote: bool


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """The codec decided the connection must die; its GOAWAY (if any) is already queued.

    The owner writes what ``data_to_send()`` still returns and closes the transport; every
    open stream on the connection is gone. ``reason`` is for the log.
    """

    error_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class WindowOpened:
    """Buffered body bytes of this stream went out: a paused producer may check again."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class SettingsChanged:
    """The peer changed how many streams it lets us open (client codecs only)."""

    max_concurrent_streams: int


Event = (
    RequestHead
    | ResponseHead
    | Data
    | Trailers
    | Reset
    | GoAway
    | ConnectionFailed
    | WindowOpened
    | SettingsChanged
)
