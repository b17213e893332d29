"""Data path: responses the gateway writes itself (errors, redirects, direct responses)."""

from __future__ import annotations

from gateway_core.proxy.flags import ResponseFlag
from gateway_core.routing.actions import DirectResponseAction, HeaderList, RedirectAction
from gateway_core.routing.matchers import PrefixMatcher, RequestMatch
from gateway_core.routing.request import RequestHead

DEFAULT_BODIES: dict[ResponseFlag, bytes] = {
    ResponseFlag.NO_ROUTE: b"no route matched this request\n",
    ResponseFlag.NO_CLUSTER: b"no cluster for this route\n",
    ResponseFlag.NO_HEALTHY_UPSTREAM: b"no healthy upstream\n",
    ResponseFlag.UPSTREAM_OVERFLOW: b"upstream overflow: too many pending requests\n",
    ResponseFlag.UPSTREAM_TIMEOUT: b"upstream request timeout\n",
    ResponseFlag.UPSTREAM_CONNECTION_TERMINATION: (
        b"upstream connect error or disconnect/reset before headers\n"
    ),
    ResponseFlag.UPSTREAM_PROTOCOL_ERROR: b"upstream sent an invalid response\n",
    ResponseFlag.FAULT_INJECTED: b"fault filter abort\n",
    ResponseFlag.STREAM_IDLE_TIMEOUT: b"stream timeout\n",
    ResponseFlag.DRAINING: b"gateway is draining\n",
}


def route_answer(
    action: RedirectAction | DirectResponseAction,
    req: RequestHead,
    match: RequestMatch | None,
    trusted_https: bool,
) -> tuple[int, ResponseFlag | None, bytes | None, HeaderList]:
    """A route's own answer, as ``local_reply`` arguments: a redirect or a direct response.

    A server's ``httpsRedirect`` does not apply behind a trusted TLS-terminating hop
    (``X-Forwarded-Proto: https``), where it would loop (istio/istio#16778): no route then.
    """
    if isinstance(action, DirectResponseAction):
        return action.status, None, action.body, []
    if action.https_redirect and trusted_https:
        return 404, ResponseFlag.NO_ROUTE, None, []
    return action.code, None, b"", [(b"location", redirect_location(action, req, match))]


def redirect_location(
    action: RedirectAction, req: RequestHead, match: RequestMatch | None
) -> bytes:
    """The ``Location`` of an Istio ``HTTPRedirect`` (or a server's ``httpsRedirect``).

    Port: explicit ``port``; ``derivePort: FROM_REQUEST_PORT`` keeps the request's port and
    ``FROM_PROTOCOL_DEFAULT`` drops it; otherwise the original authority's port is kept when the
    scheme and authority are unchanged. ``httpsRedirect`` keeps the host and goes to the HTTPS
    server's port when the client addressed a non-default port, else to 443.
    """
    scheme = action.scheme or req.scheme
    host, port = _split_authority(req.authority)
    if action.https_redirect:
        scheme = b"https"
        port = action.https_port if port is not None else None
    if action.authority is not None:
        host, new_port = _split_authority(action.authority)
        port = new_port
    if action.port is not None:
        port = action.port
    elif action.derive_port == "FROM_REQUEST_PORT":
        port = req.port
    elif action.derive_port == "FROM_PROTOCOL_DEFAULT" or (
        action.scheme is not None and action.scheme != req.scheme and action.authority is None
    ):
        port = None
    if port is not None and _is_default(scheme, port):
        port = None
    path = req.path
    query = req.query
    if action.path is not None:
        new_path, sep, new_query = action.path.partition(b"?")
        path = new_path
        if sep:
            query = new_query
    elif (
        action.prefix_rewrite is not None
        and match is not None
        and isinstance(match.uri, PrefixMatcher)
    ):
        path = action.prefix_rewrite + path[len(match.uri.value) :]
    authority = host if port is None else host + b":%d" % port
    location = scheme + b"://" + authority + path
    return location + b"?" + query if query else location


def _split_authority(authority: bytes) -> tuple[bytes, int | None]:
    if authority.startswith(b"["):
        end = authority.find(b"]")
        host, rest = authority[: end + 1], authority[end + 1 :]
        return host, int(rest[1:]) if rest.startswith(b":") and rest[1:].isdigit() else None
    host, sep, port = authority.rpartition(b":")
    if sep and port.isdigit():
        return host, int(port)
    return authority, None


def _is_default(scheme: bytes, port: int) -> bool:
    return (scheme == b"http" and port == 80) or (scheme == b"https" and port == 443)
