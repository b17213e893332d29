"""Tests: a small HTTP/2 client on the ``h2`` library over a real socket, with explicit control
of flow control (a stream can be left unread) for the functional HTTP/2 tests."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.settings


@dataclass
class Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    reset: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)


class H2Client:
    """One HTTP/2 connection. ``auto_ack`` False leaves received DATA unacknowledged for the
    streams listed in ``unread`` (a reader that never reads them)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.responses: dict[int, Response] = {}
        self.unread: set[int] = set()
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = asyncio.Event()
        self.window = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, port: int, *, tls: ssl.SSLContext | None = None, sni: str | None = None
    ) -> H2Client:
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=tls, server_hostname=sni if tls else None
        )
        client = cls(reader, writer)
        client.conn.initiate_connection()
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        # A connection window far larger than a stream's, as browsers open it: an unread
        # stream then holds only its own window's worth of the connection's.
        client.conn.increment_flow_control_window(16 * 1024 * 1024)
        client._flush()
        client._task = asyncio.get_running_loop().create_task(client._read())
        return client

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                for event in self.conn.receive_data(data):
                    self._on_event(event)
                self._flush()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            for response in self.responses.values():
                response.done.set()

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            response = self.responses[event.stream_id]
            headers = [(bytes(n), bytes(v)) for n, v in event.headers]
            status = next(v for n, v in headers if n == b":status")
            response.status = int(status)
            response.headers = [(n, v) for n, v in headers if not n.startswith(b":")]
            if event.stream_ended is not None:
                response.done.set()
        elif isinstance(event, h2.events.DataReceived):
            response = self.responses[event.stream_id]
            response.body += event.data
            if event.stream_id not in self.unread:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.stream_ended is not None:
                response.done.set()
        elif isinstance(event, h2.events.TrailersReceived):
            response = self.responses[event.stream_id]
            response.trailers = [(bytes(n), bytes(v)) for n, v in event.headers]
            response.done.set()
        elif isinstance(event, h2.events.StreamEnded):
            self.responses[event.stream_id].done.set()
        elif isinstance(event, h2.events.StreamReset):
            response = self.responses.get(event.stream_id)
            if response is not None:
                response.reset = event.error_code
                response.done.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window.set()

    def request(
        self,
        method: str,
        authority: str,
        path: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        *,
        end: bool = True,
    ) -> int:
        """Send a request; returns its stream id (the response is in ``responses``)."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":scheme", "https"), (":authority", authority)]
        fields += [(":path", path), *(headers or [])]
        self.responses[stream_id] = Response()
        self.conn.send_headers(stream_id, fields, end_stream=body is None and end)
        if body is not None:
            assert len(body) <= 16384, "larger bodies go through upload()"
            self.conn.send_data(stream_id, body, end_stream=end)
        self._flush()
        return stream_id

    async def upload(self, stream_id: int, body: bytes, within: float = 10.0) -> None:
        """Send a request body of any size, as flow control allows, and end the stream."""
        view = memoryview(body)
        async with asyncio.timeout(within):
            while view:
                room = min(
                    self.conn.local_flow_control_window(stream_id),
                    self.conn.max_outbound_frame_size,
                    len(view),
                )
                if room <= 0:
                    self.window.clear()
                    await self.window.wait()
                    continue
                self.conn.send_data(stream_id, bytes(view[:room]))
                view = view[room:]
                self._flush()
            self.conn.end_stream(stream_id)
            self._flush()

    def send_data(self, stream_id: int, data: bytes, *, end: bool = False) -> None:
        self.conn.send_data(stream_id, data, end_stream=end)
        self._flush()

    def read_unread(self, stream_id: int) -> None:
        """Start reading a stream left unread: acknowledge what arrived, and what follows."""
        self.unread.discard(stream_id)
        response = self.responses[stream_id]
        if response.body:
            self.conn.acknowledge_received_data(len(response.body), stream_id)
            self._flush()

    async def response(self, stream_id: int, within: float = 10.0) -> Response:
        response = self.responses[stream_id]
        await asyncio.wait_for(response.done.wait(), within)
        return response

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.conn.close_connection()
            self._flush()
            self.writer.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)
