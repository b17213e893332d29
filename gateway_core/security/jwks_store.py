"""Control path: keys from ``jwksUri``, fetched, cached, refreshed and published to the data path.

One refresh task per URI the active configuration names (``reconcile``). Each fetch is an
aiohttp GET bounded by the rule's ``timeout`` and ``MAX_JWKS_BYTES``; a good answer is parsed
once (``parse_jwks``) and published by replacing the whole URI → ``KeySet`` mapping in one
assignment, so a request reads either the old keys or the new ones, never a half-built set.

* Refresh: every ``refresh_interval`` (Istio's istiod default, 20 minutes); after a failure
  sooner (``retry_interval``, doubling while failures go on, at most ``MAX_RETRY``); and on
  demand when a token names a ``kid`` the keys do not have (``request_refresh``), at most once
  per ``min_refresh_gap`` per URI.
* Outage: a failed fetch keeps the last good keys; valid tokens keep being accepted. Failures
  are counted (``gateway_jwks_fetch{result="failure"}``) and shown in ``/config_dump``.
* The request path never waits: it reads ``keys(uri)``; a URI never fetched yet gives None and
  the filter answers 401 (``Jwks remote fetch is failed``) at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway_core.security.authn import JwtAuthnSpec, Verified
from gateway_core.security.jwks import MAX_JWKS_BYTES, JwksError, KeySet, parse_jwks
from gateway_core.utils.tasks import spawn

if TYPE_CHECKING:  # aiohttp is imported at the first fetch: worker processes never fetch
    import aiohttp

_log = logging.getLogger("gateway.jwks")

REFRESH_INTERVAL = 1200.0
RETRY_INTERVAL = 10.0
MAX_RETRY = 300.0
MIN_REFRESH_GAP = 30.0
VERIFIED_ENTRIES = 1024
VERIFIED_MAX_TOKEN = 8192
FIRST_FETCH_WAIT = 5.0
"""How long applying a configuration waits for the first fetch of a new URI."""


@dataclass(slots=True)
class UriState:
    uri: str
    timeout: float
    fetches_ok: int = 0
    fetches_failed: int = 0
    last_ok: float | None = None
    last_failure: float | None = None
    last_error: str = ""
    last_attempt: float = float("-inf")
    failing: int = 0
    """Failed fetches in a row (the retry delay doubles with each, up to ``MAX_RETRY``)."""
    notes: list[str] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    first: asyncio.Event = field(default_factory=asyncio.Event)


def jwks_uris(filters: tuple[object, ...]) -> dict[str, float]:
    """The ``jwksUri`` of every rule of a snapshot's gateway chain, with its fetch timeout."""
    out: dict[str, float] = {}
    for spec in filters:
        if isinstance(spec, JwtAuthnSpec):
            for rule in spec.rules:
                if rule.jwks_uri and rule.inline_keys is None:
                    out[rule.jwks_uri] = min(out.get(rule.jwks_uri, rule.fetch_timeout), 60.0)
    return out


class JwksStore:
    """The process's ``KeySource`` (``security/authn.py``)."""

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        refresh_interval: float = REFRESH_INTERVAL,
        retry_interval: float = RETRY_INTERVAL,
        min_refresh_gap: float = MIN_REFRESH_GAP,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self.refresh_interval = refresh_interval
        self.retry_interval = retry_interval
        self.min_refresh_gap = min_refresh_gap
        self._keys: Mapping[str, KeySet] = MappingProxyType({})
        self._uris: dict[str, UriState] = {}
        self._session: aiohttp.ClientSession | None = None
        self._verified: dict[str, Verified] = {}
        """Verified tokens, with their parse, rule and key set."""
        self.authn: dict[tuple[str, str], int] = {}
        """Tokens seen, by (rule issuer, failure reason or ``""``)."""

    # -- KeySource (data path) -----------------------------------------------------------------
    def keys(self, uri: str) -> KeySet | None:
        return self._keys.get(uri)

    def now(self) -> float:
        return self._wall()

    def request_refresh(self, uri: str) -> None:
        state = self._uris.get(uri)
        if state is not None and self._monotonic() - state.last_attempt >= self.min_refresh_gap:
            state.wake.set()

    def record(self, issuer: str, reason: str) -> None:
        key = (issuer, reason)
        self.authn[key] = self.authn.get(key, 0) + 1

    def recall(self, token: str) -> Verified | None:
        return self._verified.get(token)

    def remember(self, token: str, verified: Verified) -> None:
        """Only verified tokens are kept (a client cannot fill this with junk), at most
        ``VERIFIED_ENTRIES`` (then it starts over)."""
        if len(token) <= VERIFIED_MAX_TOKEN:
            if len(self._verified) >= VERIFIED_ENTRIES:
                self._verified.clear()
            self._verified[token] = verified

    # -- control path ---------------------------------------------------------------------------
    async def reconcile(self, uris: Mapping[str, float], wait: float = FIRST_FETCH_WAIT) -> None:
        """Fetch what ``uris`` names from now on: start a refresh task per new URI (waiting up
        to ``wait`` seconds for their first answers), stop those no longer named."""
        for uri in [u for u in self._uris if u not in uris]:
            state = self._uris.pop(uri)
            if state.task is not None:
                state.task.cancel()
        self._keys = MappingProxyType({u: k for u, k in self._keys.items() if u in uris})
        new: list[UriState] = []
        for uri, timeout in uris.items():
            known = self._uris.get(uri)
            if known is not None:
                known.timeout = timeout
                continue
            state = self._uris[uri] = UriState(uri, timeout)
            state.task = spawn(self._refresh_loop(state), name=f"jwks {uri}")
            new.append(state)
        if new and wait > 0:
            waits = [asyncio.ensure_future(s.first.wait()) for s in new]
            _, pending = await asyncio.wait(waits, timeout=wait)
            for fut in pending:
                fut.cancel()

    async def _refresh_loop(self, state: UriState) -> None:
        while True:
            ok = await self.fetch(state)
            state.first.set()
            state.wake.clear()
            if ok:
                state.failing, delay = 0, self.refresh_interval
            else:
                state.failing += 1
                delay = min(self.retry_interval * 2 ** min(state.failing - 1, 16), MAX_RETRY)
            try:
                await asyncio.wait_for(state.wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def fetch(self, state: UriState) -> bool:
        """One GET of the URI; True when it gave a usable key set (now published)."""
        state.last_attempt = self._monotonic()
        try:
            keys, notes = await self._get(state.uri, state.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every way a fetch can fail is counted the same way
            state.fetches_failed += 1
            state.last_failure = self._wall()
            state.last_error = _describe(exc, state.timeout)
            _log.warning("jwks fetch %s failed: %s", state.uri, state.last_error)
            return False
        state.fetches_ok += 1
        state.last_ok = self._wall()
        state.last_error = ""
        state.notes = notes
        if state.uri in self._uris:
            self._keys = MappingProxyType({**self._keys, state.uri: keys})
        return True

    async def _get(self, uri: str, seconds: float) -> tuple[KeySet, list[str]]:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=False)
        async with self._session.get(
            uri,
            timeout=aiohttp.ClientTimeout(total=seconds),
            allow_redirects=False,
            headers={"accept": "application/json"},
        ) as resp:
            if resp.status != 200:
                raise JwksError(f"HTTP status {resp.status}")
            body = await resp.content.read(MAX_JWKS_BYTES + 1)
        # Off the loop: parsing builds public keys (and the first parse imports PyJWT and
        # cryptography, tens of milliseconds that traffic would otherwise wait for).
        return await asyncio.to_thread(parse_jwks, body)

    async def close(self) -> None:
        for state in self._uris.values():
            if state.task is not None:
                state.task.cancel()
        self._uris.clear()
        if self._session is not None:
            await self._session.close()

    # -- views ------------------------------------------------------------------------------------
    def dump(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for uri, state in sorted(self._uris.items()):
            keys = self._keys.get(uri)
            out.append(
                {
                    "uri": uri,
                    "keys": keys.describe() if keys is not None else None,
                    "fetches_ok": state.fetches_ok,
                    "fetches_failed": state.fetches_failed,
                    "last_ok": state.last_ok,
                    "last_failure": state.last_failure,
                    "last_error": state.last_error or None,
                    "notes": list(state.notes),
                }
            )
        return out

    def collector(self, tier: str) -> Collector:
        return _JwtCollector(self, tier)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return str(exc) or type(exc).__name__


class _JwtCollector(Collector):
    def __init__(self, store: JwksStore, tier: str) -> None:
        self._store = store
        self._tier = tier

    def collect(self) -> Iterator[Metric]:
        store, tier = self._store, self._tier
        ok = CounterMetricFamily(
            "gateway_jwt_authn_authenticated",
            "Requests whose JWT was verified, by the rule's issuer",
            labels=["tier", "issuer"],
        )
        failed = CounterMetricFamily(
            "gateway_jwt_authn_failed",
            "Requests rejected for their JWT, by the rule's issuer ('-': none) and reason",
            labels=["tier", "issuer", "reason"],
        )
        for (issuer, reason), count in sorted(store.authn.items()):
            if reason:
                failed.add_metric([tier, issuer, reason], count)
            else:
                ok.add_metric([tier, issuer], count)
        yield ok
        yield failed
        fetches = CounterMetricFamily(
            "gateway_jwks_fetch",
            "Fetches of jwksUri key sets by result",
            labels=["tier", "uri", "result"],
        )
        usable = GaugeMetricFamily(
            "gateway_jwks_keys", "Keys held for a jwksUri (0: none yet)", labels=["tier", "uri"]
        )
        for uri, state in sorted(store._uris.items()):
            fetches.add_metric([tier, uri, "success"], state.fetches_ok)
            fetches.add_metric([tier, uri, "failure"], state.fetches_failed)
            keys = store.keys(uri)
            usable.add_metric([tier, uri], len(keys.keys) if keys is not None else 0)
        yield fetches
        yield usable
