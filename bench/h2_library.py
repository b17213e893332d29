"""Data path (benchmark): what the ``h2`` library alone costs per request, without sockets.

``python bench/h2_library.py [--requests 20000] [--streams 100]``

A client and a server ``H2Connection`` (configured by the gateway's own ``h2_configuration``:
header validation and normalisation off) talk through memory. The client sends batches of
``--streams`` GET requests in one write, as h2load does; the server parses them, answers each
with a HEADERS frame of six fields and a 2-byte DATA frame with END_STREAM, and serialises the
answer. Only the server's time is counted: ``receive_data`` of the batch, the ``send_headers``
and ``send_data`` calls, and ``data_to_send``. No TLS, no system calls, no event loop and none
of the gateway's code: a lower bound for any HTTP/2 server built on this library, to set
against nginx's whole CPU time per request in bench/run.py's ``h2-nginx-*`` paths.
"""

from __future__ import annotations

import argparse
import time

from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived

from gateway_core.proxy.codec.h2_connection import h2_configuration

REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"https"),
    (b":authority", b"tier2.cluster-1.lab"),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
    (b"accept", b"*/*"),
]
RESPONSE = [
    (b":status", b"200"),
    (b"server", b"istio-envoy"),
    (b"date", b"Sat, 05 Dec 2026 04:33:29 GMT"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"2"),
    (b"x-envoy-upstream-service-time", b"0"),
]


def connection(client: bool) -> H2Connection:
    return H2Connection(h2_configuration(client))


def server_seconds(requests: int, streams: int) -> tuple[float, int]:
    """Seconds the server side spent and the responses it completed."""
    client, server = connection(True), connection(False)
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    spent, answered = 0.0, 0
    while answered < requests:
        for _ in range(min(streams, requests - answered)):
            client.send_headers(client.get_next_available_stream_id(), REQUEST, end_stream=True)
        batch = client.data_to_send()
        start = time.perf_counter()
        for event in server.receive_data(batch):
            if isinstance(event, RequestReceived):
                server.send_headers(event.stream_id, RESPONSE)
                server.send_data(event.stream_id, b"ok", end_stream=True)
                answered += 1
        out = server.data_to_send()
        spent += time.perf_counter() - start
        for event in client.receive_data(out):
            if isinstance(event, DataReceived):
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        server.receive_data(client.data_to_send())
        server.data_to_send()
    return spent, answered


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--streams", type=int, default=100, help="requests per client write")
    args = parser.parse_args(argv)
    spent, answered = server_seconds(args.requests, args.streams)
    print(
        f"h2 library, server side: {spent / answered * 1e6:.1f} µs per request "
        f"({answered} requests, {args.streams} per batch)"
    )


if __name__ == "__main__":
    main()
