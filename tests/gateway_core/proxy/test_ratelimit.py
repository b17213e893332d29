"""Tests for gateway_core/proxy/ratelimit.py: the local rate limit filter in a filter chain,
with a fake loop clock and a recording exchange (no sockets)."""

from __future__ import annotations

from typing import Any

from gateway_core.proxy.filters import run_chain, run_gateway_chain
from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.ratelimit import BODY, claim_value, descriptor_value
from gateway_core.proxy.token_bucket import RateLimits
from gateway_core.routing.actions import DirectResponseAction
from gateway_core.routing.ratelimit import KeySource, RateLimitSpec
from gateway_core.routing.request import RequestHead
from gateway_core.routing.route_table import RouteEntry
from gateway_core.security.principal import RequestAuth
from tests.gateway_core.proxy.fakes import FakeLoop

GLOBAL = RateLimitSpec("default/all", max_tokens=2, tokens_per_fill=1, fill_interval=1.0)
PER_USER = RateLimitSpec(
    "default/user",
    max_tokens=1,
    tokens_per_fill=1,
    fill_interval=1.0,
    source=KeySource.HEADER,
    header=b"x-user",
)


class Runtime:
    def __init__(self, *specs: RateLimitSpec) -> None:
        self.limits = RateLimits()
        self.rate_limits = self.limits.publish(specs)


class Down:
    def __init__(self, runtime: Runtime, loop: FakeLoop, client: str = "192.0.2.1") -> None:
        self.runtime = runtime
        self.loop = loop
        self.client = client
        self.trust_forwarded = False

    def origin_ip(self, req: RequestHead) -> str:
        return self.client

    def trusts_https(self, req: RequestHead) -> bool:
        return False


class Ex:
    def __init__(self, down: Down, req: RequestHead, entry: RouteEntry | None = None) -> None:
        self.down = down
        self.req = req
        self.entry = entry
        self.match = None
        self.auth: RequestAuth | None = None
        self.hops = b""
        self.cors_origin = None
        self.replies: list[tuple[int, Any, Any, Any]] = []
        self.routed = False

    def local_reply(
        self, status: int, flag: Any, body: Any = None, extra: Any = None, **kw: Any
    ) -> None:
        self.replies.append((status, flag, body, extra))

    def route_to(self, action: Any) -> None:
        self.routed = True


def req(**headers: bytes) -> RequestHead:
    fields = [(k.replace("_", "-").encode(), v) for k, v in headers.items()]
    return RequestHead(b"GET", b"/", b"", b"h", b"http", 80, fields)


def test_gateway_limit_answers_429_with_envoy_body_flag_and_headers() -> None:
    loop = FakeLoop()
    down = Down(Runtime(GLOBAL), loop)
    outcomes = []
    for _ in range(3):
        ex = Ex(down, req())
        outcomes.append(run_gateway_chain(ex, (GLOBAL,)))  # type: ignore[arg-type]
    assert outcomes == [False, False, True]
    status, flag, body, headers = ex.replies[0]
    assert (status, flag, body) == (429, ResponseFlag.RATE_LIMITED, BODY)
    assert body == b"local_rate_limited"
    assert dict(headers) == {
        b"retry-after": b"1",
        b"x-ratelimit-limit": b"2",
        b"x-ratelimit-remaining": b"0",
        b"x-ratelimit-reset": b"1",
    }
    stats = down.runtime.limits.samples()
    assert stats == [("default/all", 2, 1, 0)]


def test_the_bucket_refills_on_the_loop_clock() -> None:
    loop = FakeLoop()
    down = Down(Runtime(GLOBAL), loop)
    for _ in range(2):
        assert not run_gateway_chain(Ex(down, req()), (GLOBAL,))  # type: ignore[arg-type]
    assert run_gateway_chain(Ex(down, req()), (GLOBAL,))  # type: ignore[arg-type]
    loop.now += 1.0
    assert not run_gateway_chain(Ex(down, req()), (GLOBAL,))  # type: ignore[arg-type]
    assert run_gateway_chain(Ex(down, req()), (GLOBAL,))  # type: ignore[arg-type]


def test_retry_after_rounds_up_the_time_to_the_next_fill() -> None:
    slow = RateLimitSpec("default/slow", max_tokens=1, tokens_per_fill=1, fill_interval=10.0)
    loop = FakeLoop()
    down = Down(Runtime(slow), loop)
    run_gateway_chain(Ex(down, req()), (slow,))  # type: ignore[arg-type]
    loop.now += 2.5
    ex = Ex(down, req())
    assert run_gateway_chain(ex, (slow,))  # type: ignore[arg-type]
    headers = dict(ex.replies[0][3])
    assert headers[b"retry-after"] == headers[b"x-ratelimit-reset"] == b"8"


def test_descriptor_buckets_are_per_header_value() -> None:
    down = Down(Runtime(PER_USER), FakeLoop())

    def limited(**headers: bytes) -> bool:
        return run_gateway_chain(Ex(down, req(**headers)), (PER_USER,))  # type: ignore[arg-type]

    assert not limited(x_user=b"alice")
    assert limited(x_user=b"alice")
    assert not limited(x_user=b"bob")
    # Requests without the header share one bucket: leaving it out does not escape the limit.
    assert not limited()
    assert limited()


def test_route_limit_runs_in_the_route_chain_before_the_action() -> None:
    action = DirectResponseAction(status=200, body=b"ok")
    entry = RouteEntry("r", "vs", 0, (), action, rate_limits=(GLOBAL,))
    assert entry.filters == (GLOBAL, action)
    down = Down(Runtime(GLOBAL), FakeLoop())
    statuses = []
    for _ in range(3):
        ex = Ex(down, req(), entry)
        run_chain(ex)  # type: ignore[arg-type]
        statuses.append(ex.replies[0][0])
    assert statuses == [200, 200, 429]


def test_a_limit_missing_from_the_live_set_lets_the_request_through() -> None:
    down = Down(Runtime(), FakeLoop())  # a reload removed the limit
    assert not run_gateway_chain(Ex(down, req()), (GLOBAL,))  # type: ignore[arg-type]


def test_descriptor_values() -> None:
    loop = FakeLoop()
    by_ip = RateLimitSpec("d/ip", 1, 1, 1.0, source=KeySource.REMOTE_ADDRESS)
    by_claim = RateLimitSpec("d/c", 1, 1, 1.0, source=KeySource.CLAIM, claim=("org", "id"))
    down = Down(Runtime(), loop, client="203.0.113.9")
    ex = Ex(down, req())
    assert descriptor_value(ex, GLOBAL) is None  # type: ignore[arg-type]
    assert descriptor_value(ex, by_ip) == b"203.0.113.9"  # type: ignore[arg-type]
    assert descriptor_value(ex, by_claim) == b""  # type: ignore[arg-type]
    ex.auth = RequestAuth("iss", "sub", {"org": {"id": 42}})
    assert descriptor_value(ex, by_claim) == b"42"  # type: ignore[arg-type]


def test_claim_value() -> None:
    claims = {"sub": "u1", "groups": ["a", "b"], "nested": {"k": True}}
    assert claim_value(claims, ("sub",)) == b"u1"
    assert claim_value(claims, ("groups",)) == b"a,b"
    assert claim_value(claims, ("nested", "k")) == b"True"
    assert claim_value(claims, ("nested", "missing")) == b""
    assert claim_value(claims, ("sub", "deeper")) == b""
