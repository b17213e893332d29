"""Tests for gateway_core/proxy/filters.py and ``RouteEntry.filters``: the per-route filter
chain, compiled with the route and run for each exchange (no sockets; a recording exchange)."""

from __future__ import annotations

import random
from typing import Any

from gateway_core.proxy.filters import run_chain
from gateway_core.proxy.flags import ResponseFlag
from gateway_core.routing.actions import (
    CorsSpec,
    DirectResponseAction,
    FaultSpec,
    RedirectAction,
    RouteAction,
    WeightedCluster,
)
from gateway_core.routing.matchers import ExactMatcher
from gateway_core.routing.request import RequestHead
from gateway_core.routing.route_table import RouteEntry
from tests.gateway_core.proxy.fakes import FakeLoop

ROUTE = RouteAction.build((WeightedCluster("c", 100, "svc"),))
CORS = CorsSpec(allow_origins=(ExactMatcher(b"https://app"),), allow_methods=b"GET")
ABORT = FaultSpec(abort_status=418, abort_percent=100.0)
DELAY = FaultSpec(delay=2.0, delay_percent=100.0)


def entry(action: Any = ROUTE, **kw: Any) -> RouteEntry:
    return RouteEntry(name="r", vs_ref="vs", rule_index=0, matches=(), action=action, **kw)


class Down:
    def __init__(self) -> None:
        self.loop = FakeLoop()
        self.runtime = type("R", (), {"rng": random.Random(1)})()

    def trusts_https(self, req: RequestHead) -> bool:
        return False


class Ex:
    """Records what the chain did to the exchange."""

    def __init__(self, route: RouteEntry, req: RequestHead) -> None:
        self.entry = route
        self.req = req
        self.match = None
        self.down = Down()
        self.cors_origin: bytes | None = None
        self.flags: tuple[ResponseFlag, ...] = ()
        self.wait: Any = None
        self.did: list[tuple[Any, ...]] = []

    def route_to(self, action: RouteAction) -> None:
        self.did.append(("route", action))

    def local_reply(
        self, status: int, flag: Any, body: Any = None, extra: Any = None, **kw: Any
    ) -> None:
        self.did.append(("reply", status, flag, extra))

    def guarded(self, step: Any, *args: Any) -> None:
        step(*args)

    def continue_chain(self, index: int) -> None:
        self.did.append(("continue", index))
        run_chain(self, index)  # type: ignore[arg-type]


def req(method: bytes = b"GET", **headers: bytes) -> RequestHead:
    fields = [(k.replace("_", "-").encode(), v) for k, v in headers.items()]
    return RequestHead(method, b"/", b"", b"h", b"http", 80, fields)


def test_chain_order_is_cors_fault_action() -> None:
    assert entry().filters == (ROUTE,)
    assert entry(cors=CORS, fault=ABORT).filters == (CORS, ABORT, ROUTE)
    # Faults apply to routed requests only; a redirect or direct response answers itself.
    redirect = RedirectAction(code=301, path=b"/new")
    assert entry(redirect, cors=CORS, fault=ABORT).filters == (CORS, redirect)


def test_plain_route_is_routed() -> None:
    ex = Ex(entry(), req())
    run_chain(ex)  # type: ignore[arg-type]
    assert ex.did == [("route", ROUTE)]


def test_cors_preflight_is_answered_and_others_continue_with_the_origin_kept() -> None:
    preflight = req(b"OPTIONS", origin=b"https://app", access_control_request_method=b"GET")
    ex = Ex(entry(cors=CORS), preflight)
    run_chain(ex)  # type: ignore[arg-type]
    assert [d[:2] for d in ex.did] == [("reply", 200)]
    assert (b"access-control-allow-origin", b"https://app") in ex.did[0][3]
    simple = Ex(entry(cors=CORS), req(origin=b"https://app"))
    run_chain(simple)  # type: ignore[arg-type]
    assert simple.did == [("route", ROUTE)]
    assert simple.cors_origin == b"https://app"  # its response headers are added later


def test_fault_abort_stops_the_chain() -> None:
    ex = Ex(entry(fault=ABORT), req())
    run_chain(ex)  # type: ignore[arg-type]
    assert ex.did == [("reply", 418, ResponseFlag.FAULT_INJECTED, None)]


def test_fault_delay_resumes_the_chain_after_itself() -> None:
    ex = Ex(entry(cors=CORS, fault=DELAY), req())
    run_chain(ex)  # type: ignore[arg-type]
    assert ex.did == []  # held
    assert ex.flags == (ResponseFlag.DELAY_INJECTED,)
    (timer,) = ex.down.loop.timers
    assert timer.when == ex.down.loop.time() + 2.0
    timer.fire()
    assert ex.did == [("continue", 2), ("route", ROUTE)]


def test_direct_response_answers() -> None:
    ex = Ex(entry(DirectResponseAction(status=204)), req())
    run_chain(ex)  # type: ignore[arg-type]
    assert [d[:2] for d in ex.did] == [("reply", 204)]


def test_gateway_chain_runs_in_order_and_stops_at_the_element_that_takes_the_request(
    monkeypatch: Any,
) -> None:
    """``run_gateway_chain``: each element's handler by type, in order; the first that takes
    the request ends the chain (and route selection is skipped, True)."""
    from gateway_core.proxy import filters

    class Note:
        pass

    class Stop:
        pass

    seen: list[str] = []

    def note(ex: Any, spec: Any) -> bool:
        seen.append("note")
        return False

    def stop(ex: Any, spec: Any) -> bool:
        seen.append("stop")
        ex.local_reply(429, None)
        return True

    monkeypatch.setitem(filters._GATEWAY_HANDLERS, Note, note)
    monkeypatch.setitem(filters._GATEWAY_HANDLERS, Stop, stop)
    ex = Ex(entry(), req())
    assert (
        filters.run_gateway_chain(
            ex,  # type: ignore[arg-type]
            (Note(), Note()),
        )
        is False
    )
    assert seen == ["note", "note"]
    seen.clear()
    assert (
        filters.run_gateway_chain(
            ex,  # type: ignore[arg-type]
            (Note(), Stop(), Note()),
        )
        is True
    )
    assert seen == ["note", "stop"]
    assert ex.did and ex.did[-1][:2] == ("reply", 429)
