"""Data path (lab): the bookinfo roles of the demo pods (productpage, details, reviews, ratings).

Behaviour follows Istio's bookinfo sample where the lab scenarios look at it: the product page
title, the "Error fetching product …" texts when a backend is missing or slow, star glyphs from
reviews v2 (black) and v3 (red), and forwarding of ``end-user`` and trace headers so routing by
user and tracing work across hops. Each section of the page also says which cluster and pod
served it, read from the ``x-demo-*`` headers every demo pod stamps on its responses.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

PRODUCTPAGE_TIMEOUT = 1.5
RATINGS_TIMEOUT = 10.0
"""bookinfo's reviews waits up to 10 s for ratings; the fault-injection task relies on it."""
USER_COOKIE = "user"
FORWARDED = ("end-user", "x-request-id", "b3", "traceparent", "tracestate", "x-ot-span-context")
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"

PRODUCT = {
    "id": 0,
    "title": "The Comedy of Errors",
    "descriptionHtml": (
        '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: '
        "The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his "
        "shortest and one of his most farcical comedies, with a major part of the humour coming "
        "from slapstick and mistaken identity, in addition to puns and word play."
    ),
}
REVIEWS = (
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other "
        "plays by Shakespeare.",
    ),
)
RATINGS: Mapping[str, int] = {"Reviewer1": 5, "Reviewer2": 4}


@dataclass(frozen=True, slots=True)
class Served:
    """Who answered: a demo pod's identity as stamped in its ``x-demo-*`` headers."""

    cluster: str = "?"
    pod: str = "?"
    version: str = "?"
    locality: str = ""

    def describe(self) -> str:
        where = f", locality {self.locality}" if self.locality else ""
        return f"cluster {self.cluster}, pod {self.pod}, version {self.version}{where}"


@dataclass(frozen=True, slots=True)
class Fetched:
    data: Any = None
    status: int = 0
    served: Served | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Backends:
    """What the bookinfo handlers need from the pod: its identity and where its backends are."""

    me: Served
    details_url: str | None = None
    reviews_url: str | None = None
    ratings_url: str | None = None
    proxy: str | None = None
    """``host:port`` that backend calls connect to (a gateway) while Host names the URL's host."""


BACKENDS = web.AppKey("bookinfo_backends", Backends)
CLIENT = web.AppKey("bookinfo_client", aiohttp.ClientSession)


def install(app: web.Application, backends: Backends, role: str) -> None:
    """Add ``role``'s bookinfo routes (no-op for other roles) and the backend HTTP client."""
    app[BACKENDS] = backends
    app.cleanup_ctx.append(_client_ctx)
    app.router.add_routes(_ROUTES.get(role, []))


async def _client_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(trust_env=False) as session:
        app[CLIENT] = session
        yield


def served_by(headers: Mapping[str, str]) -> Served:
    return Served(
        headers.get("x-demo-cluster", "?"),
        headers.get("x-demo-pod", "?"),
        headers.get("x-demo-version", "?"),
        headers.get("x-demo-locality", ""),
    )


def forwarded_headers(request: web.Request) -> dict[str, str]:
    """Trace and user headers a bookinfo service passes on (its ``getForwardHeaders``)."""
    out = {k: v for k, v in request.headers.items() if k.lower().startswith("x-b3-")}
    out.update({k: request.headers[k] for k in FORWARDED if k in request.headers})
    user = request.cookies.get(USER_COOKIE)
    if user and "end-user" not in out:
        out["end-user"] = user
    return out


async def fetch_json(
    request: web.Request, base_url: str | None, path: str, time_limit: float
) -> Fetched:
    """GET ``base_url + path``; through ``Backends.proxy`` the URL only supplies Host."""
    if not base_url:
        return Fetched(error="backend not configured")
    url = URL(base_url.rstrip("/") + path)
    headers = forwarded_headers(request)
    proxy = request.app[BACKENDS].proxy
    if proxy:
        headers["Host"] = url.raw_authority
        url = URL(f"http://{proxy}").with_path(url.raw_path).with_query(url.raw_query_string)
    client_timeout = aiohttp.ClientTimeout(total=time_limit)
    try:
        async with request.app[CLIENT].get(url, headers=headers, timeout=client_timeout) as resp:
            served = served_by(resp.headers)
            if resp.status >= 400:
                return Fetched(status=resp.status, served=served, error=f"HTTP {resp.status}")
            return Fetched(status=resp.status, served=served, data=await resp.json())
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Fetched(error=f"{type(exc).__name__}: {exc}")


def _product_id(request: web.Request) -> int | None:
    text = request.match_info["id"]
    return int(text) if text.isdigit() else None


def _bad_id() -> web.Response:
    return web.json_response({"error": "please provide numeric product ID"}, status=400)


# ---- productpage ------------------------------------------------------------------------------


async def _productpage(request: web.Request) -> web.Response:
    b = request.app[BACKENDS]
    details, reviews = await asyncio.gather(
        fetch_json(request, b.details_url, "/details/0", PRODUCTPAGE_TIMEOUT),
        fetch_json(request, b.reviews_url, "/reviews/0", PRODUCTPAGE_TIMEOUT),
    )
    user = request.cookies.get(USER_COOKIE) or request.headers.get("end-user") or ""
    page = render_productpage(b.me, user, details, reviews)
    return web.Response(text=page, content_type="text/html")


async def _products(request: web.Request) -> web.Response:
    return web.json_response([PRODUCT])


async def _product_part(request: web.Request) -> web.Response:
    pid = _product_id(request)
    if pid is None:
        return _bad_id()
    b = request.app[BACKENDS]
    part = request.match_info.get("part", "details")
    base = {"details": b.details_url, "reviews": b.reviews_url, "ratings": b.ratings_url}[part]
    fetched = await fetch_json(request, base, f"/{part}/{pid}", PRODUCTPAGE_TIMEOUT)
    if fetched.error is not None:
        error = {"error": f"Sorry, product {part} are currently unavailable for this book."}
        return web.json_response(error, status=503)
    return web.json_response(fetched.data)


async def _static(request: web.Request) -> web.Response:
    path = request.match_info["tail"]
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return web.Response(text=f"/* demo static asset {path} */\n", content_type=content_type)


async def _login(request: web.Request) -> web.Response:
    form = await request.post() if request.method == "POST" else request.query
    user = str(form.get("username", "")).strip()
    response = _redirect_to_page()
    if user:
        response.set_cookie(USER_COOKIE, user, path="/")
    return response


def _redirect_to_page() -> web.Response:
    return web.Response(status=302, headers={"Location": "/productpage"})


async def _logout(request: web.Request) -> web.Response:
    response = _redirect_to_page()
    response.del_cookie(USER_COOKIE, path="/")
    return response


# ---- details / reviews / ratings --------------------------------------------------------------


def details_json(pid: int) -> dict[str, Any]:
    return {
        "id": pid,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    }


async def _details(request: web.Request) -> web.Response:
    pid = _product_id(request)
    return _bad_id() if pid is None else web.json_response(details_json(pid))


async def _ratings(request: web.Request) -> web.Response:
    pid = _product_id(request)
    return _bad_id() if pid is None else web.json_response({"id": pid, "ratings": dict(RATINGS)})


async def _reviews(request: web.Request) -> web.Response:
    b = request.app[BACKENDS]
    pid = request.match_info["id"]
    color = {"v2": "black", "v3": "red"}.get(b.me.version)
    ratings = Fetched()
    if color is not None:
        ratings = await fetch_json(request, b.ratings_url, f"/ratings/{pid}", RATINGS_TIMEOUT)
    reviews: list[dict[str, Any]] = []
    for reviewer, text in REVIEWS:
        review: dict[str, Any] = {"reviewer": reviewer, "text": text}
        if color is not None:
            stars = _stars_for(ratings, reviewer)
            review["rating"] = (
                {"stars": stars, "color": color}
                if stars is not None
                else {"error": RATINGS_UNAVAILABLE}
            )
        reviews.append(review)
    body = {"id": pid, "podname": b.me.pod, "clustername": b.me.cluster, "reviews": reviews}
    return web.json_response(body)


def _stars_for(ratings: Fetched, reviewer: str) -> int | None:
    if ratings.error is not None or not isinstance(ratings.data, dict):
        return None
    stars = ratings.data.get("ratings", {}).get(reviewer)
    return stars if isinstance(stars, int) else None


# ---- rendering --------------------------------------------------------------------------------


def render_productpage(me: Served, user: str, details: Fetched, reviews: Fetched) -> str:
    who = f"Signed in as {escape(user)}" if user else "Sign in"
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        "<title>Simple Bookstore App</title>\n</head>\n<body>\n"
        f'<nav><a href="#">BookInfo Sample</a> <span class="user">{who}</span></nav>\n'
        f'<p id="served-by">productpage served by {escape(me.describe())}</p>\n'
        f'<h3 class="text-center text-primary">{escape(str(PRODUCT["title"]))}</h3>\n'
        f"<p>Summary: {PRODUCT['descriptionHtml']}</p>\n"
        f'<div class="details">\n{_details_html(details)}</div>\n'
        f'<div class="reviews">\n{_reviews_html(reviews)}</div>\n'
        "</body>\n</html>\n"
    )


def _from(fetched: Fetched) -> str:
    served = fetched.served or Served()
    return f'<p class="served-by">served by {escape(served.describe())}</p>\n'


def _details_html(details: Fetched) -> str:
    if details.error is not None or not isinstance(details.data, dict):
        return (
            '<h4 class="text-center text-primary">Error fetching product details!</h4>\n'
            "<p>Sorry, product details are currently unavailable for this book.</p>\n"
        )
    rows = "".join(
        f"<dt>{escape(str(k))}:</dt><dd>{escape(str(v))}</dd>\n"
        for k, v in details.data.items()
        if k != "id"
    )
    title = '<h4 class="text-center text-primary">Book Details</h4>\n'
    return f"{title}{_from(details)}<dl>\n{rows}</dl>\n"


def _reviews_html(reviews: Fetched) -> str:
    if reviews.error is not None or not isinstance(reviews.data, dict):
        return (
            '<h4 class="text-center text-primary">Error fetching product reviews!</h4>\n'
            "<p>Sorry, product reviews are currently unavailable for this book.</p>\n"
        )
    parts = [f'<h4 class="text-center text-primary">Book Reviews</h4>\n{_from(reviews)}']
    for review in reviews.data.get("reviews", []):
        parts.append(
            f"<blockquote>\n<p>{escape(str(review.get('text', '')))}</p>\n"
            f"<small>{escape(str(review.get('reviewer', '')))}</small>\n"
            f"{_rating_html(review.get('rating'))}</blockquote>\n"
        )
    return "".join(parts)


def _rating_html(rating: Any) -> str:
    if not isinstance(rating, dict):
        return ""
    if "error" in rating:
        return f"<p><i>{escape(str(rating['error']))}</i></p>\n"
    stars = int(rating.get("stars", 0))
    color = escape(str(rating.get("color", "black")))
    glyphs = '<span class="glyphicon glyphicon-star"></span>' * stars
    empty = '<span class="glyphicon glyphicon-star-empty"></span>' * (5 - stars)
    return f'<font color="{color}">{glyphs}{empty}</font>\n'


_ROUTES: dict[str, list[web.AbstractRouteDef]] = {
    "productpage": [
        web.get("/productpage", _productpage),
        web.get("/static/{tail:.*}", _static),
        web.route("*", "/login", _login),
        web.get("/logout", _logout),
        web.get("/api/v1/products", _products),
        web.get("/api/v1/products/{id}", _product_part),
        web.get("/api/v1/products/{id}/{part:reviews|ratings}", _product_part),
    ],
    "details": [web.get("/details/{id}", _details)],
    "reviews": [web.get("/reviews/{id}", _reviews)],
    "ratings": [web.get("/ratings/{id}", _ratings)],
}
