"""Functional-test support: a small OTLP/HTTP trace receiver on 127.0.0.1 (aiohttp).

It decodes each ``ExportTraceServiceRequest`` (protobuf, as the OpenTelemetry SDK's exporter
sends it) with ``opentelemetry-proto``'s own classes and keeps every span with its resource's
attributes. ``hold()`` makes it stuck: requests are read, then left unanswered until
``release()``.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    """Hex ids; ``""`` when the span has no parent."""
    kind: int
    status_code: int
    attributes: dict[str, str]
    resource: dict[str, str]


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.port = 0
        self._open = asyncio.Event()
        self._open.set()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def start(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._export)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            # aiohttp has no public accessor for the bound port (asyncio's or uvloop's server).
            server: Any = site._server
            self.port = server.sockets[0].getsockname()[1]
        except BaseException:
            await self._runner.cleanup()
            raise
        return self

    async def close(self) -> None:
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _export(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = ExportTraceServiceRequest.FromString(body)
        self.requests += 1
        for resource_spans in message.resource_spans:
            resource = {a.key: _text(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans += (_received(span, resource) for span in scope.spans)
        await self._open.wait()
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def wait_for(self, count: int, within: float = 10.0) -> list[ReceivedSpan]:
        """The spans received once there are at least ``count`` (polled, bounded)."""
        deadline = time.monotonic() + within
        while len(self.spans) < count:
            assert time.monotonic() < deadline, f"{len(self.spans)} spans, wanted {count}"
            await asyncio.sleep(0.02)
        return list(self.spans)

    async def wait_requests(self, count: int, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while self.requests < count:
            assert time.monotonic() < deadline, f"{self.requests} export requests"
            await asyncio.sleep(0.02)


def _received(span: Span, resource: dict[str, str]) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(),
        kind=span.kind,
        status_code=span.status.code,
        attributes={a.key: _text(a.value) for a in span.attributes},
        resource=resource,
    )
