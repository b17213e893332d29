"""Control path: who may call the admin calls that change state (``POST /reload``, ``/drain``,
the lab's control API).

Read-only calls (``GET``/``HEAD``) are open to whoever reaches the admin address: probes and the
Prometheus scraper need no credentials. Every other method needs ``Authorization: Bearer
<token>`` with the token read from ``--admin-token-file`` (compared in constant time), or is
refused with 401 and ``www-authenticate: Bearer``, from loopback too, unless
``--admin-allow-unauthenticated-loopback`` lets a caller on a loopback address in without one.
The file is read at start (a missing or empty file stops the start) and read again when it
changes, so a rotated Secret takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

_log = logging.getLogger(__name__)

READ_ONLY_METHODS = frozenset({"GET", "HEAD"})
REALM = "gateway-admin"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def read_token(path: str) -> bytes:
    """The token in ``path`` without surrounding whitespace; ``ValueError`` when it is empty."""
    with open(path, "rb") as handle:
        token = handle.read().strip()
    if not token:
        raise ValueError(f"admin token file {path} is empty")
    return token


def _file_key(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


@dataclass(slots=True)
class AdminAuth:
    """The token (if any) and whether unauthenticated loopback callers are let in."""

    token_file: str | None = None
    allow_unauthenticated_loopback: bool = False
    _token: bytes | None = None
    _key: tuple[int, int, int] | None = None

    @classmethod
    def load(cls, token_file: str | None, allow_unauthenticated_loopback: bool) -> AdminAuth:
        auth = cls(token_file or None, allow_unauthenticated_loopback)
        if auth.token_file is not None:
            auth._key = _file_key(auth.token_file)
            auth._token = read_token(auth.token_file)
        return auth

    def describe(self) -> str:
        modes = []
        if self.token_file is not None:
            modes.append(f"bearer token from {self.token_file}")
        if self.allow_unauthenticated_loopback:
            modes.append("unauthenticated loopback callers")
        return " or ".join(modes) if modes else "nobody (no --admin-token-file)"

    async def _current_token(self) -> bytes | None:
        path = self.token_file
        if path is None:
            return None
        try:
            key = await asyncio.to_thread(_file_key, path)
            if key != self._key:
                self._token = await asyncio.to_thread(read_token, path)
                self._key = key
                _log.info("admin token file %s read again", path)
        except (OSError, ValueError) as exc:
            _log.warning("admin token file %s unreadable, keeping the last token: %s", path, exc)
        return self._token

    async def check(self, request: web.Request) -> str | None:
        """None when ``request`` may change state, else why not (the 401's ``error``)."""
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        token = await self._current_token()
        if header:
            if scheme.lower() != "bearer" or token is None:
                return "invalid_request"
            if hmac.compare_digest(presented.strip().encode(), token):
                return None
            return "invalid_token"
        if self.allow_unauthenticated_loopback and is_loopback(request.remote):
            return None
        return "missing_token"


def is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def auth_middleware(auth: AdminAuth) -> Middleware:
    """An aiohttp middleware: read-only methods pass, the rest must pass ``auth.check``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method in READ_ONLY_METHODS:
            return await handler(request)
        error = await auth.check(request)
        if error is None:
            return await handler(request)
        _log.warning(
            "admin %s %s from %s refused: %s", request.method, request.path, request.remote, error
        )
        challenge = f'Bearer realm="{REALM}"'
        if error != "missing_token":
            challenge += f', error="{error}"'
        return web.json_response(
            {"error": "a bearer token is required for this admin call", "reason": error},
            status=401,
            headers={"WWW-Authenticate": challenge},
        )

    return middleware
