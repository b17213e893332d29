"""Data path: ``RequestHead``, the parsed request line and headers that routing reads.

Header names are lower-case bytes; repeated headers are joined with ``,`` in ``headers``
(Envoy's view for matching) while ``raw_headers`` keeps the original order for forwarding.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from gateway_core.utils.memo import BoundedMemo


class RequestHead:
    """One downstream request as the router sees it. Built once per request."""

    __slots__ = (
        "_query_params",
        "authority",
        "headers",
        "host",
        "method",
        "path",
        "port",
        "query",
        "raw_headers",
        "scheme",
        "source_ip",
    )

    def __init__(
        self,
        method: bytes,
        path: bytes,
        query: bytes,
        authority: bytes,
        scheme: bytes,
        port: int,
        raw_headers: list[tuple[bytes, bytes]],
        source_ip: str = "",
        *,
        headers: dict[bytes, bytes] | None = None,
    ) -> None:
        """``headers``: ``raw_headers`` already joined by name, when the caller has them."""
        self.method = method
        self.path = path
        self.query = query
        self.authority = authority
        self.host = _HOSTS[authority]
        self.scheme = scheme
        self.port = port
        self.raw_headers = raw_headers
        self.source_ip = source_ip
        self.headers = join_headers(raw_headers) if headers is None else headers
        self._query_params: dict[bytes, bytes] | None = None

    @property
    def query_params(self) -> dict[bytes, bytes]:
        """First value of each query parameter, percent-decoded (``?a`` gives ``a`` = ``b""``)."""
        if self._query_params is None:
            self._query_params = parse_query(self.query)
        return self._query_params

    @property
    def target(self) -> bytes:
        return self.path + b"?" + self.query if self.query else self.path


def join_headers(raw_headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Values by name, repeated names joined with ``,`` in order."""
    headers = dict(raw_headers)
    if len(headers) == len(raw_headers):
        return headers  # no repeated name: the common case, built in C
    headers.clear()
    for name, value in raw_headers:
        if name in headers:
            headers[name] = headers[name] + b"," + value
        else:
            headers[name] = value
    return headers


def host_of(authority: bytes) -> str:
    """Lower-case host without the port: ``Example.COM:8080`` -> ``example.com``."""
    text = authority.decode("latin-1").lower()
    if text.startswith("["):
        end = text.find("]")
        return text[: end + 1] if end > 0 else text
    colon = text.rfind(":")
    return text[:colon] if colon >= 0 else text


_HOSTS: BoundedMemo[bytes, str] = BoundedMemo(host_of)
"""``host_of``, remembered: a keep-alive stream repeats a handful of authorities."""


def parse_query(query: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    if not query:
        return out
    for part in query.split(b"&"):
        if not part:
            continue
        key, _, value = part.partition(b"=")
        key = unquote_to_bytes(key.replace(b"+", b" "))
        if key not in out:
            out[key] = unquote_to_bytes(value.replace(b"+", b" "))
    return out
