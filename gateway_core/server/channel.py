"""Control path: the supervisor ⇄ worker channel (one unix socketpair per worker).

Frames are a 4-byte big-endian length and a pickled message. Both ends are the same program run
by the same user over an inherited socketpair that nothing else can reach, so pickle is safe
here and carries the typed messages below as they are. The supervisor sends what it decided
(the compiled snapshot to serve, host health, drains); a worker sends acknowledgements, outcome
batches for outlier detection, and its metric families when asked.

A snapshot is pickled whole, by ``pack_snapshot``: its dataclasses as calls of their
constructors with their fields (so what ``__post_init__`` derives, such as a route table's memo,
is built afresh, and mypyc-compiled frozen classes need no state setter), its read-only
mappings (``MappingProxyType``, which pickle does not know) as dicts wrapped again. The few
objects that are neither say how to rebuild themselves (a JWT key is parsed again from its
JSON; ``when`` getters are classes rather than closures). A worker therefore needs neither the
configuration models nor the compiler.
"""

from __future__ import annotations

import asyncio
import io
import pickle
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from types import MappingProxyType
from typing import Any

from gateway_core.settings import GatewaySettings
from gateway_core.snapshot import Snapshot
from gateway_core.upstream.shared_hosts import HostRow

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20


def read_only(items: dict[Any, Any]) -> Mapping[Any, Any]:
    """Unpickles a ``MappingProxyType``."""
    return MappingProxyType(items)


def construct(cls: Callable[..., object], fields: dict[str, Any]) -> object:
    """Unpickles a dataclass: its constructor called with its fields."""
    return cls(**fields)


class _SnapshotPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls is MappingProxyType:
            return read_only, (dict(obj),)
        if is_dataclass(cls) and "__reduce__" not in cls.__dict__:
            return construct, (cls, {f.name: getattr(obj, f.name) for f in fields(cls) if f.init})
        return NotImplemented


# -- supervisor → worker -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hello:
    """First message: who the worker is and the settings it runs with (the sticky-cookie key
    is in ``settings.sticky_secret``, the same for every worker)."""

    index: int
    workers: int
    settings: GatewaySettings


@dataclass(frozen=True, slots=True)
class Apply:
    """Serve ``version``: ``snapshot`` is the snapshot the supervisor validated and compiled,
    pickled once for every worker (``pack_snapshot``; a worker unpickles it off its event loop
    and reports a failure as it would any other). ``hosts``: the supervisor's host state of
    every cluster, set before the snapshot goes live."""

    version: str
    snapshot: bytes
    hosts: dict[str, list[HostRow]]


def pack_snapshot(snapshot: Snapshot) -> bytes:
    """``snapshot`` as ``Apply`` carries it; raises what pickle raises for an object that
    cannot be sent."""
    out = io.BytesIO()
    _SnapshotPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(snapshot)
    return out.getvalue()


def unpack_snapshot(data: bytes) -> Snapshot:
    snapshot = pickle.loads(data)
    if not isinstance(snapshot, Snapshot):
        raise TypeError(f"expected a Snapshot, got {type(snapshot).__name__}")
    return snapshot


@dataclass(frozen=True, slots=True)
class Hosts:
    """New host membership or health of some clusters (keyed by cluster key)."""

    hosts: dict[str, list[HostRow]]


@dataclass(frozen=True, slots=True)
class ReloadCertificates:
    """Certificate files changed: rebuild server and upstream TLS contexts."""


@dataclass(frozen=True, slots=True)
class Collect:
    """Send the worker's metric families (answered with ``Families``)."""

    request: int


@dataclass(frozen=True, slots=True)
class Drain:
    propagation: float


# -- worker → supervisor -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Applied:
    """``version`` serves now (``error``: it could not, and the previous one still serves)."""

    version: str
    error: str = ""


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Upstream outcomes since the last batch: (cluster key, host label, codes in order); a
    code is an HTTP status, or a negative local-origin code (``shared_hosts.LOCAL_CODES``)."""

    batch: list[tuple[str, str, list[int]]]


@dataclass(frozen=True, slots=True)
class Families:
    request: int
    families: list[Any]
    """``prometheus_client`` ``Metric`` objects, as the worker's registry collected them."""


class Channel:
    """Framed messages over one connected stream socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: Any) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME)
        return cls(reader, writer)

    def send(self, message: object) -> None:
        """Queue one message (never blocks; the transport buffers)."""
        if self._writer.is_closing():
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_HEADER.pack(len(data)) + data)

    async def receive(self) -> object | None:
        """The next message, or None once the peer has gone."""
        try:
            head = await self._reader.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(head)
            if size > MAX_FRAME:
                return None
            message: object = pickle.loads(await self._reader.readexactly(size))
            return message
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    def close(self) -> None:
        self._writer.close()
