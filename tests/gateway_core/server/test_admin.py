"""Tests: the admin endpoint's JSON answers, one line by default and indented with ``?pretty``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port
from tests.functional.support import config
from tests.helpers import GatewayHarness

PRETTY = ["pretty", "pretty=1", "pretty=true", "pretty=TRUE"]
COMPACT = ["", "pretty=0", "pretty=false"]


async def _fetch(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.content_type, await resp.text()


@pytest.mark.parametrize(
    "path", ["/clusters", "/config_dump", "/explain?url=http://a.example:{port}/"]
)
async def test_json_answers_indent_on_request(
    path: str, pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """``?pretty`` (also ``=1``/``=true``) indents the same document; otherwise it is one line."""
    pod = await pods("echo")
    rules = "  - route: [{destination: {host: echo.svc}}]"
    port = free_port()
    harness: GatewayHarness = await gateway(config(port, rules, {"echo.svc": [pod.port]}))
    path = path.format(port=port)
    sep = "&" if "?" in path else "?"
    answers = {}
    for query in PRETTY + COMPACT:
        status, content_type, text = await _fetch(
            harness.admin + path + (sep + query) * bool(query)
        )
        assert (status, content_type) == (200, "application/json"), query
        answers[query] = text
    document = json.loads(answers[""])
    assert "outbound|80||echo.svc" in json.dumps(document)  # a real answer, not an empty one
    for query in COMPACT:
        assert "\n" not in answers[query].strip(), query
        assert json.loads(answers[query]) == document
    for query in PRETTY:
        assert answers[query] == json.dumps(document, indent=2) + "\n", query
        assert answers[query].count("\n") > 10
