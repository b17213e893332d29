"""Functional: RE2 route regexes answer a 16 KiB path in linear time through a real gateway.

``/api/(\\w+)+/x`` is a pattern RE2 accepts on which a backtracking engine runs for exponential
time when the path almost matches; one such request would freeze the event loop and every
client with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.conftest import free_port
from tests.functional.support import config, get

RULES = """\
  - match: [{uri: {regex: "/api/(\\\\w+)+/x"}}]
    directResponse: {status: 200, body: {string: matched}}
  - match: [{headers: {x-id: {regex: "(a|aa)+b"}}}]
    directResponse: {status: 200, body: {string: header}}
"""


async def test_backtracking_route_regex_on_16_kib_path_is_fast(
    gateway: Callable[..., Any],
) -> None:
    """A 16 KiB near-miss path gets its 404 and a matching one its 200, each well under a
    second, and the loop stays free to answer the next request."""
    port = free_port()
    await gateway(config(port, RULES, {}))
    body = "a" * (16 * 1024 - len("/api//y"))
    miss, hit = f"/api/{body}/y", f"/api/{body}/x"
    assert len(miss) == 16 * 1024
    for target, status, text in ((miss, 404, None), (hit, 200, b"matched")):
        start = time.perf_counter()
        resp = await get(port, target)
        elapsed = time.perf_counter() - start
        assert resp.status == status
        assert text is None or resp.body == text
        assert elapsed < 0.5, (target[-2:], elapsed)


async def test_backtracking_header_regex_is_fast(gateway: Callable[..., Any]) -> None:
    """Header regexes run on RE2 too: ``(a|aa)+b`` against 8 KiB of ``a`` is a quick 404."""
    port = free_port()
    await gateway(config(port, RULES, {}))
    start = time.perf_counter()
    resp = await get(port, "/h", headers={"x-id": "a" * 8192})
    assert resp.status == 404
    assert time.perf_counter() - start < 0.5
    assert (await get(port, "/h", headers={"x-id": "aaab"})).body == b"header"
