"""Data path: WebSocket upgrades. After the upstream's ``101 Switching Protocols`` both
connections become an opaque byte relay until either side closes.

Client bytes that follow the Upgrade request are held (pausing the client beyond 64 KiB) until
the upstream agrees; then the attempt (``UpstreamRequest.on_upstream_upgrade``) opens the
buffer, and upstream bytes flow through the attempt in raw framing, so flow control and
teardown work as for any response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway_core.proxy.interfaces import ClientExchange, Downstream
    from gateway_core.proxy.upstream_conn import UpstreamConnection

_HOLD_LIMIT = 65536


class ClientTunnelBuffer:
    """Client bytes that follow an Upgrade request, held until the upstream agrees (101)."""

    __slots__ = ("down", "ex", "held", "size", "upstream")

    def __init__(self, down: Downstream, rest: bytes, ex: ClientExchange) -> None:
        self.down = down
        self.ex = ex
        """The exchange that asked for the upgrade: it counts the client's tunnel bytes."""
        self.held: list[bytes] = [rest] if rest else []
        self.size = len(rest)
        ex.bytes_received += len(rest)
        self.upstream: UpstreamConnection | None = None

    def from_client(self, data: bytes) -> None:
        self.ex.bytes_received += len(data)
        if self.upstream is not None:
            self.upstream.write(data)
            return
        self.held.append(data)
        self.size += len(data)
        if self.size > _HOLD_LIMIT:
            self.down.pause_reading("tunnel")

    def open(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        for chunk in self.held:
            conn.write(chunk)
        self.held.clear()
        self.down.resume_reading("tunnel")
