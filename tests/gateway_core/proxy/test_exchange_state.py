"""Tests for gateway_core/proxy/exchange.py without sockets: the router's state machine (with
``upstream_request.py``, ``retry.py``, ``upstream_conn.py`` and ``h2_upstream.py``) driven by
events and a fake clock.

A real client connection routes to real clusters (pools, breakers, load balancers, outlier
counters) whose upstream connections are real ones on fake transports (``exchange_kit``). The
test plays the client, the upstream hosts and the clock, and checks what each side was sent
and what the process recorded. Hosts: ``up.svc`` has two (10.0.0.1, 10.0.0.2), ``one.svc`` one
behind a one-connection breaker, ``grpc.svc`` none (its DNS name never resolved), ``h2.svc``
one spoken to over HTTP/2.
"""

from __future__ import annotations

import pytest

from gateway_core.proxy.codec.events import RequestHead
from gateway_core.proxy.codec.http2 import H2ServerCodec
from gateway_core.snapshot import Snapshot
from gateway_core.upstream.outlier import HostMonitor
from tests.gateway_core.proxy.exchange_kit import (
    Client,
    Gateway,
    Outcome,
    compile_config,
    get,
    ok,
)

CONFIG = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /shop}}]
    rewrite: {authority: shop.internal}
    route: [{destination: {host: up.svc}}]
  - match: [{uri: {prefix: /retry}}]
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: 5xx}
    route: [{destination: {host: up.svc}}]
  - match: [{uri: {prefix: /slow}}]
    timeout: 3s
    route: [{destination: {host: up.svc}}]
  - match: [{uri: {prefix: /one}}]
    route: [{destination: {host: one.svc}}]
  - match: [{uri: {prefix: /grpc}}]
    route: [{destination: {host: grpc.svc}}]
  - match: [{uri: {prefix: /h2}}]
    route: [{destination: {host: h2.svc}}]
  - route: [{destination: {host: up.svc}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: up}
spec:
  hosts: [up.svc]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: up}
spec:
  host: up.svc
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 5}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: one}
spec:
  hosts: [one.svc]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.1.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: one}
spec:
  host: one.svc
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc}
spec:
  hosts: [grpc.svc]
  ports: [{number: 80, name: grpc, protocol: GRPC}]
  resolution: DNS
  endpoints: [{address: grpc.invalid}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: h2}
spec:
  hosts: [h2.svc]
  ports: [{number: 80, name: http2, protocol: HTTP2}]
  resolution: STATIC
  endpoints: [{address: 10.0.2.1}]
"""


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return compile_config(tmp_path_factory.mktemp("cfg"), CONFIG)


@pytest.fixture
def gw(snapshot: Snapshot) -> Gateway:
    return Gateway(snapshot)


def monitor(gw: Gateway, label: str) -> HostMonitor:
    m = gw.cluster("up.svc").host_by_label[label].monitor
    assert isinstance(m, HostMonitor)
    return m


def test_request_forwarded_and_response_reframed(gw: Gateway) -> None:
    """The upstream head: the route's authority as ``host``, hop-by-hop fields dropped, the
    x-forwarded-* fields set from the client's connection, the client's request id kept. The
    response, delimited by the upstream's close, reaches the HTTP/1.1 client chunked, and the
    client's connection stays open."""
    c = Client(gw)
    c.send(
        get(
            b"/shop/cart?id=7",
            extra=b"User-Agent: t\r\nConnection: keep-alive\r\nX-Request-Id: rid-1\r\n",
        )
    )
    up = gw.h1.accept()
    assert up.received == (
        b"GET /shop/cart?id=7 HTTP/1.1\r\nhost: shop.internal\r\nuser-agent: t\r\n"
        b"x-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n"
        b"x-forwarded-host: shop.example\r\nx-request-id: rid-1\r\n\r\n"
    )
    up.reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhel")
    up.reply(b"lo")
    assert gw.outcomes == []
    up.close()
    assert c.received == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n"
        b"server: multicluster-gateway\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
    )
    assert gw.outcomes == [Outcome(200, [], 1, up.host)]
    assert not c.transport.closed
    assert gw.cluster("up.svc").resources.connections.count == 0


def test_keep_alive_connection_serves_the_next_request(gw: Gateway) -> None:
    """A complete response with a length goes back to the pool; the next request on any
    client takes that connection (no new connect) and its host."""
    first, second = Client(gw), Client(gw)
    first.send(get(b"/a"))
    up = gw.h1.accept()
    up.reply(ok(b"one"))
    assert first.received.endswith(b"\r\n\r\none")
    second.send(get(b"/b"))
    assert gw.h1.waiting() == [] and len(gw.h1.accepted) == 1
    assert up.received.count(b"GET ") == 2 and b"\r\n\r\nGET /b HTTP/1.1\r\n" in up.received
    up.reply(ok(b"two"))
    assert second.received.endswith(b"\r\n\r\ntwo")
    assert [o.host for o in gw.outcomes] == [up.host, up.host]
    assert not up.gone


def test_per_try_timeout_retried_on_the_other_host(gw: Gateway) -> None:
    """``perTryTimeout: 1s``, ``retryOn: 5xx``: the silent first host is given up after 1 s
    (its connection aborted), the retry goes to the other host, whose answer the client
    gets."""
    c = Client(gw)
    c.send(get(b"/retry"))
    first = gw.h1.accept()
    gw.advance(0.999)
    assert gw.h1.waiting() == [] and [u.gone for u in gw.h1.accepted] == [False]
    gw.advance(0.001)
    assert [u.gone for u in gw.h1.accepted] == [True]
    gw.advance(0.25)  # the back-off (under 10 times 25 ms)
    second = gw.h1.accept()
    assert second.host != first.host
    assert second.received.startswith(b"GET /retry HTTP/1.1\r\n")
    second.reply(ok(b"second"))
    assert c.statuses() == [200] and c.received.endswith(b"\r\n\r\nsecond")
    assert gw.outcomes == [Outcome(200, [], 2, second.host)]
    assert gw.cluster("up.svc").stats.retries == 1
    assert monitor(gw, first.host).consecutive_gateway == 1  # a timeout counts as a 504


def test_route_timeout_is_504_ut_and_counts_against_the_host(gw: Gateway) -> None:
    """Route ``timeout: 3s`` and a host that never answers: 504 ``UT`` at 3 s, the upstream
    connection aborted (its response can never be reused), and the timeout recorded against
    the host for outlier detection as a gateway error (Envoy's non-split mode: a 504). The
    client's connection stays usable."""
    c = Client(gw)
    c.send(get(b"/slow"))
    up = gw.h1.accept()
    gw.advance(2.999)
    assert c.received == b""
    gw.advance(0.001)
    assert c.received == (
        b"HTTP/1.1 504 Gateway Timeout\r\ncontent-type: text/plain\r\ncontent-length: 25\r\n"
        b"server: multicluster-gateway\r\n\r\nupstream request timeout\n"
    )
    assert gw.outcomes == [Outcome(504, ["UT"], 1, up.host)]
    assert up.transport.aborted and up.gone
    assert gw.cluster("up.svc").resources.connections.count == 0
    m = monitor(gw, up.host)
    assert (m.consecutive_5xx, m.consecutive_gateway) == (1, 1)
    assert not c.transport.closed


def test_upstream_reset_before_the_head_is_503_uc(gw: Gateway) -> None:
    """The host closes the connection before any response byte. The route's retry policy is
    Istio's default (connect failures, refused streams, no ``reset``): no retry, 503 ``UC``."""
    c = Client(gw)
    c.send(get(b"/"))
    up = gw.h1.accept()
    up.close()
    assert c.received == (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
        b"content-length: 58\r\nserver: multicluster-gateway\r\n\r\n"
        b"upstream connect error or disconnect/reset before headers\n"
    )
    assert gw.outcomes == [Outcome(503, ["UC"], 1, up.host)]
    assert gw.h1.waiting() == []
    assert gw.cluster("up.svc").stats.resets == 1


def test_connect_failure_retried_on_the_other_host(gw: Gateway) -> None:
    """A refused connect is retried (Istio's default policy) on the host not tried yet."""
    c = Client(gw)
    c.send(get(b"/"))
    refused = gw.h1.refuse()
    assert gw.h1.waiting() == []
    gw.advance(0.25)
    up = gw.h1.accept()
    assert up.host != refused
    up.reply(ok(b"fine"))
    assert c.statuses() == [200]
    assert gw.outcomes == [Outcome(200, [], 2, up.host)]
    cluster = gw.cluster("up.svc")
    assert (cluster.stats.connect_fail, cluster.stats.retries) == (1, 1)
    assert monitor(gw, refused).consecutive_5xx == 1


def test_overflow_is_503_uo(gw: Gateway) -> None:
    """``maxConnections: 1`` and ``http1MaxPendingRequests: 1`` on one host: the first
    request connects, the second waits for that connection, the third fails at once with
    503 ``UO``; the two others are served in turn over the one connection."""
    clients = [Client(gw) for _ in range(3)]
    for i, c in enumerate(clients):
        c.send(get(b"/one/%d" % i))
    assert clients[2].received == (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
        b"content-length: 45\r\nserver: multicluster-gateway\r\n\r\n"
        b"upstream overflow: too many pending requests\n"
    )
    assert gw.outcomes == [Outcome(503, ["UO"], 1, "10.0.1.1:80")]
    up = gw.h1.accept()
    up.reply(ok(b"0"))
    up.reply(ok(b"1"))
    assert [c.statuses() for c in clients] == [[200], [200], [503]]
    assert up.received.count(b"GET /one/") == 2 and len(gw.h1.accepted) == 1
    resources = gw.cluster("one.svc").resources
    assert (resources.pending_requests.overflow, resources.pending_requests.count) == (1, 0)


def test_grpc_with_no_healthy_upstream_is_trailers_only_unavailable(gw: Gateway) -> None:
    """A gRPC request to a cluster with no host: HTTP 200 with ``grpc-status: 14``
    (UNAVAILABLE) and the reason in ``grpc-message``, no body; no connect is attempted."""
    c = Client(gw)
    c.send(
        b"POST /grpc.Echo/Say HTTP/1.1\r\nHost: grpc.svc\r\nContent-Type: application/grpc\r\n"
        b"TE: trailers\r\nContent-Length: 5\r\n\r\n\x00\x00\x00\x00\x00"
    )
    assert c.received == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ncontent-type: application/grpc\r\n"
        b"grpc-status: 14\r\ngrpc-message: no healthy upstream\r\n"
        b"server: multicluster-gateway\r\nconnection: close\r\n\r\n"
    )
    assert c.transport.closed  # answered before its body was read: the connection closes
    assert gw.outcomes == [Outcome(200, ["UH"], 1, None)]
    assert gw.h1.attempts == [] and gw.h2.attempts == []


def test_client_gone_mid_response_closes_the_upstream_connection(gw: Gateway) -> None:
    """The client drops while the body streams: the exchange ends ``DC`` with the status
    that went out, and the upstream connection, its response unfinished, is aborted."""
    c = Client(gw)
    c.send(get(b"/"))
    up = gw.h1.accept()
    up.reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n1234")
    assert c.received.endswith(b"\r\n\r\n1234")
    c.go_away()
    assert gw.outcomes == [Outcome(200, ["DC"], 1, up.host)]
    assert up.transport.aborted and up.gone
    assert gw.cluster("up.svc").resources.connections.count == 0


def test_http2_upstream_carries_two_clients_on_one_connection(gw: Gateway) -> None:
    """Two clients' requests to an HTTP/2 cluster share one upstream connection, as streams
    1 and 3; each client gets the answer to its own stream, in whatever order they come."""
    a, b = Client(gw), Client(gw)
    a.send(get(b"/h2/a", host=b"h2.svc"))
    b.send(get(b"/h2/b", host=b"h2.svc"))
    up = gw.h2.accept()
    assert gw.h2.waiting() == [] and gw.h1.attempts == []
    server = H2ServerCodec()
    heads = [e for e in server.receive(up.received) if isinstance(e, RequestHead)]
    assert [(h.stream_id, h.method, h.authority, h.path) for h in heads] == [
        (1, b"GET", b"h2.svc", b"/h2/a"),
        (3, b"GET", b"h2.svc", b"/h2/b"),
    ]
    assert (b"x-forwarded-for", b"127.0.0.1") in heads[0].headers
    for stream_id, body in ((3, b"bee"), (1, b"ay")):
        server.send_response_head(stream_id, 200, [(b"content-length", b"%d" % len(body))])
        server.send_data(stream_id, body, end_stream=True)
        up.reply(server.data_to_send())
    assert b.received.endswith(b"\r\n\r\nbee") and a.received.endswith(b"\r\n\r\nay")
    assert [(o.status, o.host) for o in gw.outcomes] == [(200, up.host), (200, up.host)]
    assert len(gw.h2.accepted) == 1 and not up.gone
    assert gw.cluster("h2.svc").resources.connections.count == 1
