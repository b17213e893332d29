"""Functional tests for the lab demo pods on real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway_core.snapshot import Locality
from gateway_lab.demo_pod import PodConfig, bound_port, main, parse_args, pattern_bytes, start_pod

UNAVAILABLE_DETAILS = (
    "Error fetching product details!",
    "Sorry, product details are currently unavailable for this book.",
)
UNAVAILABLE_REVIEWS = (
    "Error fetching product reviews!",
    "Sorry, product reviews are currently unavailable for this book.",
)
FULL_STAR = '<span class="glyphicon glyphicon-star"></span>'
EMPTY_STAR = '<span class="glyphicon glyphicon-star-empty"></span>'


@contextlib.asynccontextmanager
async def pod(role: str, **kwargs: object) -> AsyncIterator[str]:
    runner = await start_pod(PodConfig(role=role, **kwargs))  # type: ignore[arg-type]
    try:
        yield f"http://127.0.0.1:{bound_port(runner)}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies set by 127.0.0.1 (the login test needs them).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def get_text(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as resp:
        return resp.status, await resp.text()


async def test_productpage_shows_details_and_reviews_with_their_pods(
    http: aiohttp.ClientSession,
) -> None:
    """With details and reviews v1 up, the page shows both and which pods served them."""
    async with (
        pod("details", cluster="c2", pod="details-x") as details,
        pod("reviews", cluster="c3", pod="reviews-y", version="v1") as reviews,
        pod(
            "productpage", cluster="c1", pod="pp-1", details_url=details, reviews_url=reviews
        ) as pp,
    ):
        status, page = await get_text(http, f"{pp}/productpage")
    assert status == 200
    assert "<title>Simple Bookstore App</title>" in page
    assert "productpage served by cluster c1, pod pp-1, version v1" in page
    assert "William Shakespeare" in page
    assert "123-1234567890" in page
    assert "served by cluster c2, pod details-x" in page
    assert "served by cluster c3, pod reviews-y" in page
    assert "The slapstick humour is refreshing!" in page
    assert "Error fetching" not in page
    assert "glyphicon" not in page


async def test_productpage_without_backends_shows_istio_unavailable_texts(
    http: aiohttp.ClientSession,
) -> None:
    """Unconfigured backends render bookinfo's two error texts and still answer 200."""
    async with (
        pod("productpage", cluster="east", pod="pp-0") as pp,
        http.get(f"{pp}/productpage") as resp,
    ):
        page = await resp.text()
        assert resp.status == 200
        assert resp.headers["x-demo-cluster"] == "east"
    for text in (*UNAVAILABLE_DETAILS, *UNAVAILABLE_REVIEWS):
        assert text in page


@pytest.mark.parametrize(("version", "color"), [("v2", "black"), ("v3", "red")])
async def test_reviews_v2_v3_show_stars_from_ratings(
    http: aiohttp.ClientSession, version: str, color: str
) -> None:
    """reviews v2/v3 fetch ratings (5 and 4 stars) and colour them black/red."""
    async with (
        pod("ratings") as ratings,
        pod("reviews", version=version, ratings_url=ratings) as reviews,
        pod("productpage", reviews_url=reviews) as pp,
    ):
        _, page = await get_text(http, f"{pp}/productpage")
    assert page.count(FULL_STAR) == 9
    assert page.count(EMPTY_STAR) == 1
    assert page.count(f'<font color="{color}">') == 2


async def test_reviews_without_ratings_report_ratings_unavailable(
    http: aiohttp.ClientSession,
) -> None:
    """reviews v2 with ratings down still answers, with bookinfo's ratings error per review."""
    async with pod("reviews", version="v2") as reviews:
        async with http.get(f"{reviews}/reviews/0") as resp:
            body = await resp.json()
        async with pod("productpage", reviews_url=reviews) as pp:
            _, page = await get_text(http, f"{pp}/productpage")
    ratings = [r["rating"] for r in body["reviews"]]
    assert ratings == [{"error": "Ratings service is currently unavailable"}] * 2
    assert page.count("Ratings service is currently unavailable") == 2
    assert FULL_STAR not in page


async def test_failing_details_pod_turns_into_error_text_until_recovered(
    http: aiohttp.ClientSession,
) -> None:
    """A details pod told to fail makes productpage show the error; recover restores it."""
    async with pod("details") as details, pod("productpage", details_url=details) as pp:
        async with http.post(f"{details}/admin/fail?status=503") as resp:
            assert (await resp.json())["failing"] == 503
        _, failing_page = await get_text(http, f"{pp}/productpage")
        async with http.post(f"{details}/admin/recover") as resp:
            assert (await resp.json())["failing"] is None
        _, recovered_page = await get_text(http, f"{pp}/productpage")
    assert UNAVAILABLE_DETAILS[0] in failing_page
    assert UNAVAILABLE_DETAILS[0] not in recovered_page
    assert "PublisherA" in recovered_page


async def test_fail_answers_every_non_admin_request_with_the_status(
    http: aiohttp.ClientSession,
) -> None:
    """/admin/fail makes /, /healthz and unknown paths answer the status; /admin still works."""
    async with pod("echo", pod="e-1") as echo:
        await http.post(f"{echo}/admin/fail?status=502")
        statuses = [(await get_text(http, f"{echo}{p}"))[0] for p in ("/", "/healthz", "/x")]
        async with http.get(f"{echo}/admin/state") as resp:
            state = await resp.json()
            assert resp.headers["x-demo-pod"] == "e-1"
        await http.post(f"{echo}/admin/recover")
        after = (await get_text(http, f"{echo}/healthz"))[0]
    assert statuses == [502, 502, 502]
    assert state["failing"] == 502
    assert after == 200


async def test_ready_false_fails_health_only(http: aiohttp.ClientSession) -> None:
    """/admin/ready?value=false fails /healthz and /healthz/ready but not normal traffic."""
    async with pod("httpbin") as pod_url:
        await http.post(f"{pod_url}/admin/ready?value=false")
        got = [(await get_text(http, f"{pod_url}{p}"))[0] for p in ("/healthz", "/healthz/ready")]
        normal = (await get_text(http, f"{pod_url}/status/200"))[0]
        await http.post(f"{pod_url}/admin/ready?value=true")
        back = (await get_text(http, f"{pod_url}/healthz"))[0]
        bad = (await http.post(f"{pod_url}/admin/ready?value=maybe")).status
    assert got == [503, 503]
    assert (normal, back, bad) == (200, 200, 400)


async def test_backend_calls_forward_user_and_trace_headers(http: aiohttp.ClientSession) -> None:
    """productpage forwards end-user (from login cookie), x-request-id and x-b3-* only."""
    async with pod("echo") as echo, pod("productpage", details_url=echo) as pp:
        async with http.post(f"{pp}/login", data={"username": "jason"}) as resp:
            assert resp.status == 200  # redirect followed to the page itself
            assert resp.history[0].status == 302
        headers = {"x-request-id": "rid-1", "x-b3-traceid": "abc", "x-other": "no"}
        seen = await echoed_headers(http, f"{pp}/api/v1/products/0", headers)
        async with http.get(f"{pp}/logout") as resp:
            assert resp.history[0].status == 302
        after_logout = await echoed_headers(http, f"{pp}/api/v1/products/0", {})
    assert seen["end-user"] == "jason"
    assert seen["x-request-id"] == "rid-1"
    assert seen["x-b3-traceid"] == "abc"
    assert "x-other" not in seen
    assert "end-user" not in after_logout


async def echoed_headers(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> dict[str, str]:
    async with http.get(url, headers=headers) as resp:
        body = await resp.json()
    return {k.lower(): v for k, v in body["headers"].items()}


async def test_proxy_mode_connects_to_proxy_with_url_host_as_host_header(
    http: aiohttp.ClientSession,
) -> None:
    """With a proxy, backend calls go to it with Host taken from the backend URL."""
    async with pod("echo") as echo:
        proxy = echo.removeprefix("http://")
        details = "http://details.bookinfo:9080"
        async with (
            pod("productpage", details_url=details, proxy=proxy) as pp,
            http.get(f"{pp}/api/v1/products/0") as resp,
        ):
            seen = await resp.json()
    assert seen["headers"]["Host"] == "details.bookinfo:9080"
    assert seen["path"] == "/details/0"


async def test_product_api_lists_and_reports_missing_backend(http: aiohttp.ClientSession) -> None:
    """/api/v1/products lists the book; a missing backend answers 503 with an error."""
    async with pod("productpage") as pp:
        async with http.get(f"{pp}/api/v1/products") as resp:
            products = await resp.json()
        status, _ = await get_text(http, f"{pp}/api/v1/products/0/reviews")
        static_status, _ = await get_text(http, f"{pp}/static/bootstrap/css/bootstrap.min.css")
    assert [p["title"] for p in products] == ["The Comedy of Errors"]
    assert (status, static_status) == (503, 200)


async def test_echo_identity_and_httpbin_endpoints(http: aiohttp.ClientSession) -> None:
    """echo answers any path with its identity; /status, /headers and /delay work."""
    loc = Locality("us-west1", "us-west1-a", "rack1")
    async with pod("echo", cluster="c9", pod="e-9", version="v7", locality=loc) as echo:
        async with http.put(f"{echo}/some/where?x=1") as resp:
            ident = await resp.json()
            assert resp.headers["x-demo-locality"] == "us-west1/us-west1-a/rack1"
        teapot = await get_text(http, f"{echo}/status/418")
        async with http.get(f"{echo}/headers", headers={"X-Probe": "p"}) as resp:
            headers = (await resp.json())["headers"]
        delayed, _ = await get_text(http, f"{echo}/delay/0")
        bad, _ = await get_text(http, f"{echo}/status/99")
    expected = {"cluster": "c9", "pod": "e-9", "version": "v7", "region": "us-west1"}
    assert {k: ident[k] for k in expected} == expected
    assert (ident["zone"], ident["subzone"]) == ("us-west1-a", "rack1")
    assert (ident["path"], ident["method"], ident["query"]) == ("/some/where", "PUT", {"x": "1"})
    assert teapot == (418, "I'm a teapot!\n")
    assert headers["X-Probe"] == "p"
    assert (delayed, bad) == (200, 400)


async def test_non_echo_roles_404_unknown_paths_with_identity_headers(
    http: aiohttp.ClientSession,
) -> None:
    """Roles other than echo answer 404 on unknown paths, still stamped with x-demo-*."""
    async with pod("ratings", pod="r-1") as ratings, http.get(f"{ratings}/nope") as resp:
        assert resp.status == 404
        assert resp.headers["x-demo-pod"] == "r-1"
        async with http.get(f"{ratings}/ratings/0") as ok:
            body = await ok.json()
        bad, _ = await get_text(http, f"{ratings}/ratings/abc")
    assert body == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}
    assert bad == 400


async def test_helloworld_answers_like_istio_sample(http: aiohttp.ClientSession) -> None:
    """helloworld /hello names version and instance; /health says healthy."""
    async with pod("helloworld", pod="helloworld-v2-abc", version="v2") as hw:
        hello = await get_text(http, f"{hw}/hello")
        health = await get_text(http, f"{hw}/health")
    assert hello == (200, "Hello version: v2, instance: helloworld-v2-abc\n")
    assert health == (200, "Helloworld is healthy")


async def test_websocket_echoes_text_and_binary(http: aiohttp.ClientSession) -> None:
    """/ws echoes text and binary frames back."""
    async with pod("echo") as echo, http.ws_connect(f"{echo}/ws") as ws:
        await ws.send_str("hello")
        text = await ws.receive_str()
        await ws.send_bytes(b"\x00\x01")
        data = await ws.receive_bytes()
        await ws.close()
    assert (text, data) == ("hello", b"\x00\x01")


async def test_bytes_streams_the_pattern_chunked(http: aiohttp.ClientSession) -> None:
    """/bytes/<n> streams exactly n pattern bytes with chunked encoding; too large is 400."""
    n = 3 * 1024 * 1024 + 17
    async with pod("httpbin") as hb:
        async with http.get(f"{hb}/bytes/{n}") as resp:
            body = await resp.read()
            assert resp.headers["Transfer-Encoding"] == "chunked"
        too_big, _ = await get_text(http, f"{hb}/bytes/{(1 << 30) + 1}")
    assert len(body) == n
    assert body == pattern_bytes(n)
    assert body[256:260] == b"\x00\x01\x02\x03"
    assert too_big == 400


async def test_upload_counts_and_hashes_a_streamed_body(http: aiohttp.ClientSession) -> None:
    """/upload reads a multi-megabyte chunked body and reports its size and sha256."""
    piece = os.urandom(1 << 20)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield piece

    async with pod("echo") as echo, http.post(f"{echo}/upload", data=body()) as resp:
        result = await resp.json()
    assert result == {"received": 5 << 20, "sha256": hashlib.sha256(piece * 5).hexdigest()}


def test_parse_args_builds_the_config() -> None:
    """The CLI flags map onto PodConfig, including locality and backend URLs."""
    cfg = parse_args(
        [
            "--role=reviews",
            "--listen=127.0.0.1:9080",
            "--cluster=c1",
            "--pod=reviews-v2-0",
            "--version=v2",
            "--locality=us/us-1/r1",
            "--ratings-url=http://ratings:9080",
        ]
    )
    assert (cfg.host, cfg.port, cfg.version) == ("127.0.0.1", 9080, "v2")
    assert cfg.locality == Locality("us", "us-1", "r1")
    assert cfg.ratings_url == "http://ratings:9080"


def test_main_rejects_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    """main returns argparse's exit code 2 for an unknown role and says why."""
    args = ["--role=nope", "--listen=127.0.0.1:0", "--cluster=c", "--pod=p", "--version=v1"]
    assert main(args) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


async def test_cli_serves_until_sigterm(http: aiohttp.ClientSession) -> None:
    """`python -m gateway_lab.demo_pod` prints its port, serves, and exits 0 on SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway_lab.demo_pod",
        *("--role=helloworld", "--listen=127.0.0.1:0", "--cluster=c", "--pod=hw-0"),
        "--version=v1",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    port = json.loads(line)["listening"]["port"]
    hello = await get_text(http, f"http://127.0.0.1:{port}/hello")
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert hello == (200, "Hello version: v1, instance: hw-0\n")
