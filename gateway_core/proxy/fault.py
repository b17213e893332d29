"""Data path: Istio ``fault`` injection (Envoy's fault filter) for one exchange.

``abort`` answers with its HTTP status, or HTTP 200 and its ``grpcStatus`` (flag ``FI``), for
its percentage of requests; ``delay`` holds its percentage of requests for ``fixedDelay`` (flag
``DI``) before the rest of the route's filter chain runs. The two draws are independent,
abort first, with the gateway's seeded random source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.interfaces import AnsweringExchange
from gateway_core.routing.actions import FaultSpec


class FaultTarget(AnsweringExchange, Protocol):
    """The exchange a fault applies to (``Exchange`` implements it)."""

    flags: tuple[ResponseFlag, ...]
    wait: asyncio.TimerHandle | None

    def guarded(self, step: Callable[..., None], *args: object) -> None: ...
    def continue_chain(self, index: int) -> None: ...


def inject(ex: FaultTarget, fault: FaultSpec, index: int) -> bool:
    """Apply ``fault`` (element ``index`` of the route's filter chain); True when it took
    over the exchange: it aborted it, or delays it and then resumes the chain after itself."""
    down = ex.down
    rng = down.runtime.rng
    aborts = fault.abort_status or fault.abort_grpc_status is not None
    if aborts and rng.random() * 100 < fault.abort_percent:
        if fault.abort_status:
            ex.local_reply(fault.abort_status, ResponseFlag.FAULT_INJECTED)
        else:  # grpcStatus: HTTP 200, the status in grpc-status for gRPC clients (Envoy)
            ex.local_reply(200, ResponseFlag.FAULT_INJECTED, grpc_status=fault.abort_grpc_status)
        return True
    if fault.delay and rng.random() * 100 < fault.delay_percent:
        ex.flags += (ResponseFlag.DELAY_INJECTED,)
        ex.wait = down.loop.call_later(fault.delay, ex.guarded, ex.continue_chain, index + 1)
        return True
    return False
