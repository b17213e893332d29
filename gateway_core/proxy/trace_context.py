"""Data path: trace propagation headers (W3C Trace Context and B3), read and written; pure.

``extract`` reads what a request carried: ``traceparent`` (W3C, preferred), else the single
``b3`` header, else the multi-header form (``x-b3-traceid``, ``x-b3-spanid``,
``x-b3-parentspanid``, ``x-b3-sampled``, ``x-b3-flags``). A malformed header counts as absent
(a new trace starts; the request itself is never refused). ``start`` turns that into the
gateway's own span, ``TraceContext``, whose ``upstream`` rewrites the request's trace fields for
the next hop: ``traceparent`` always, and each B3 form the request carried, all naming the
gateway's span as the parent of what follows. ``tracestate`` passes on untouched with a valid
``traceparent`` and is dropped otherwise (W3C: it means nothing without its ``traceparent``).
Ids are lower-case hex bytes, as they travel in headers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple

from gateway_core.routing.actions import HeaderList
from gateway_core.utils.id_batch import IdBatch

TRACE_FIELDS = frozenset(
    {
        b"traceparent",
        b"b3",
        b"x-b3-traceid",
        b"x-b3-spanid",
        b"x-b3-parentspanid",
        b"x-b3-sampled",
        b"x-b3-flags",
    }
)
"""The fields ``upstream`` replaces (and ``tracestate`` when the trace did not come from W3C)."""
_WITH_TRACESTATE = TRACE_FIELDS | {b"tracestate"}
_B3_MULTI = frozenset(
    {b"x-b3-traceid", b"x-b3-spanid", b"x-b3-parentspanid", b"x-b3-sampled", b"x-b3-flags"}
)

ZERO_TRACE = b"0" * 32
ZERO_SPAN = b"0" * 16
_HEX = b"0123456789abcdef"

# version "-" trace-id "-" parent-id "-" flags; a later version may append "-" and more.
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
# trace-id "-" span-id ["-" sampling ["-" parent-span-id]], or a lone sampling state.
_B3 = re.compile(
    rb"([0-9a-f]{32}|[0-9a-f]{16})-([0-9a-f]{16})(?:-([01d])(?:-([0-9a-f]{16}))?)?|([01d])"
)
_B3_ID = re.compile(rb"[0-9a-f]{32}|[0-9a-f]{16}")
_B3_SAMPLED = {b"1": True, b"true": True, b"d": True, b"0": False, b"false": False}


class Incoming(NamedTuple):
    """The trace context a request carried (empty ids: only a sampling decision came)."""

    trace_id: bytes
    """32 hex digits (a 64-bit B3 trace id is padded on the left), or ``b""``."""
    parent_id: bytes
    """The caller's span id, 16 hex digits, or ``b""``."""
    sampled: bool | None
    """The caller's sampling decision; None when it made none (B3 may leave it out)."""
    w3c: bool
    """The context came from a valid ``traceparent`` (its ``tracestate`` stays valid)."""
    b3_single: bool
    """The request carried a ``b3`` field (the next hop gets one too)."""
    b3_multi: bool
    """The request carried ``x-b3-*`` fields (the next hop gets them too)."""
    b3_short: bool = False
    """The B3 trace id was 64-bit (16 digits): B3 fields keep that length."""


def parse_traceparent(value: bytes) -> tuple[bytes, bytes, bool] | None:
    """``(trace_id, parent_id, sampled)`` of a valid ``traceparent``, else None: version
    ``ff``, all-zero ids, upper-case hex, a version-00 value with anything after the flags,
    or a repeated field (joined with ``,``) are all invalid."""
    m = _TRACEPARENT.fullmatch(value.strip(b" \t"))
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    if trace_id == ZERO_TRACE or parent_id == ZERO_SPAN:
        return None
    return trace_id, parent_id, bool(int(flags, 16) & 1)


def parse_b3(value: bytes) -> tuple[bytes, bytes, bool | None] | None:
    """``(trace_id, span_id, sampled)`` of a valid single ``b3`` value (ids empty for a lone
    sampling state such as ``0``), else None. ``d`` (debug) means sampled."""
    m = _B3.fullmatch(value.strip(b" \t").lower())
    if m is None:
        return None
    trace_id, span_id, state, parent, lone = m.groups()
    if lone is not None:
        return b"", b"", _B3_SAMPLED[lone]
    if trace_id.strip(b"0") == b"" or span_id == ZERO_SPAN or parent == ZERO_SPAN:
        return None
    return trace_id, span_id, None if state is None else _B3_SAMPLED[state]


def parse_b3_multi(headers: Mapping[bytes, bytes]) -> tuple[bytes, bytes, bool | None] | None:
    """``(trace_id, span_id, sampled)`` from the ``x-b3-*`` fields; ids empty when only a
    sampling decision came; None when the ids are malformed or only one of them is there."""
    flags = headers.get(b"x-b3-flags")
    raw = headers.get(b"x-b3-sampled")
    sampled = _B3_SAMPLED.get(raw.strip().lower()) if raw is not None else None
    if flags is not None and flags.strip() == b"1":
        sampled = True  # debug
    trace_id = headers.get(b"x-b3-traceid", b"").strip().lower()
    span_id = headers.get(b"x-b3-spanid", b"").strip().lower()
    if not trace_id and not span_id:
        return b"", b"", sampled
    if _B3_ID.fullmatch(trace_id) is None or _B3_ID.fullmatch(span_id) is None:
        return None
    if len(span_id) != 16 or trace_id.strip(b"0") == b"" or span_id == ZERO_SPAN:
        return None
    return trace_id, span_id, sampled


def extract(headers: Mapping[bytes, bytes]) -> Incoming | None:
    """What the request carried; None when it carried no trace field at all."""
    traceparent = headers.get(b"traceparent")
    single = headers.get(b"b3")
    multi = not headers.keys().isdisjoint(_B3_MULTI)
    if traceparent is None and single is None and not multi:
        return None if b"tracestate" not in headers else _NOTHING
    found: tuple[bytes, bytes, bool | None] | None = None
    w3c = False
    if traceparent is not None:
        found = parse_traceparent(traceparent)
        w3c = found is not None
    if found is None and single is not None:
        found = parse_b3(single)
    if found is None and multi:
        found = parse_b3_multi(headers)
    trace_id, parent_id, sampled = found or (b"", b"", None)
    short = len(trace_id) == 16
    if short:
        trace_id = b"0" * 16 + trace_id
    return Incoming(trace_id, parent_id, sampled, w3c, single is not None, multi, short)


_NOTHING = Incoming(b"", b"", None, False, False, False)
"""A request with a stray ``tracestate`` and nothing else: it is dropped."""


class TraceContext:
    """The gateway's span of one request, and the fields that carry it to the next hop."""

    __slots__ = ("_drop", "fields", "parent_id", "sampled", "span_id", "trace_id")

    def __init__(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_id: bytes,
        sampled: bool,
        incoming: Incoming | None,
    ) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.sampled = sampled
        flag = b"01" if sampled else b"00"
        fields: HeaderList = [(b"traceparent", b"00-%s-%s-%s" % (trace_id, span_id, flag))]
        if incoming is None:
            self._drop: frozenset[bytes] = frozenset()
        else:
            self._drop = TRACE_FIELDS if incoming.w3c else _WITH_TRACESTATE
            b3_trace = trace_id[16:] if incoming.b3_short else trace_id
            state = b"1" if sampled else b"0"
            if incoming.b3_single:
                single = b"%s-%s-%s" % (b3_trace, span_id, state)
                fields.append((b"b3", single + b"-" + parent_id if parent_id else single))
            if incoming.b3_multi:
                fields += ((b"x-b3-traceid", b3_trace), (b"x-b3-spanid", span_id))
                if parent_id:
                    fields.append((b"x-b3-parentspanid", parent_id))
                fields.append((b"x-b3-sampled", state))
        self.fields = fields

    def upstream(self, fields: HeaderList) -> HeaderList:
        """``fields`` (a request's, on its way upstream) with the trace fields replaced."""
        drop = self._drop
        if drop:
            return [f for f in fields if f[0] not in drop] + self.fields
        return fields + self.fields


def start(
    headers: Mapping[bytes, bytes],
    request_id: bytes,
    sample: Callable[[], bool],
    new_span_id: Callable[[], bytes],
) -> TraceContext:
    """The gateway's span for a request with ``headers``: a child of the caller's span when
    a valid context came in (its sampling decision kept when it made one), else the root of a
    new trace whose id is ``request_id`` read as hex (a UUID's 32 digits), or random when the
    request id is not a UUID. ``sample()`` decides when the caller did not."""
    incoming = extract(headers)
    span_id = new_span_id()
    if incoming is not None and incoming.trace_id:
        sampled = incoming.sampled
        return TraceContext(
            incoming.trace_id,
            span_id,
            incoming.parent_id,
            sample() if sampled is None else sampled,
            incoming,
        )
    sampled = incoming.sampled if incoming is not None else None
    trace_id = trace_id_of(request_id) or new_span_id() + new_span_id()
    return TraceContext(trace_id, span_id, b"", sample() if sampled is None else sampled, incoming)


def trace_id_of(request_id: bytes) -> bytes:
    """The 32 hex digits of a UUID request id, lower case; ``b""`` for anything else."""
    digits = request_id.replace(b"-", b"").lower()
    if len(digits) != 32 or digits.translate(None, _HEX) or digits == ZERO_TRACE:
        return b""
    return digits


def _span_batch() -> list[bytes]:
    """Span ids (16 hex digits) cut from one 4 KiB read of kernel randomness; the all-zero id,
    which W3C trace context forbids, left out."""
    while True:
        text = os.urandom(4096).hex().encode()
        ids = [text[i : i + 16] for i in range(0, len(text), 16)]
        ids = [i for i in ids if i != ZERO_SPAN]
        if ids:
            return ids


new_span_id = IdBatch(_span_batch).next
"""A random, non-zero span id: 16 lower-case hex digits."""
