"""Shared: start-up checks for the runtime the data path depends on.

aiohttp's pure-Python HTTP parser (used when its C extension is missing) takes
``Content-Length: 99999999999999999999`` or the chunk size ``FFFFFFFFFFFFFFFF0`` for a huge length
and waits for a body that never comes, where the C parser answers 400 (RFC 9110 §8.6 and RFC 9112
§7.1 require recipients to guard against such overflows). So the gateway refuses to run without
aiohttp's C parser; the data path itself needs httptools (llhttp).
``python -m gateway_core.utils.preflight`` runs the same checks (the test command calls it), and
also says whether TLS contexts offer only X25519, P-256 and P-384 (``gateway_core.tls.groups``).
"""

from __future__ import annotations

import sys


def check_runtime() -> str | None:
    """None when the runtime is fine, else a message saying what is missing."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "httptools (llhttp C parser) is not installed: pip install httptools"
    from aiohttp import http_parser

    if http_parser.HttpRequestParser.__module__ != "aiohttp._http_parser":
        return (
            "aiohttp is running with its pure-Python HTTP parser (AIOHTTP_NO_EXTENSIONS set, or a "
            "build without C extensions); it hangs on some overflow inputs, so it is refused"
        )
    return None


def main() -> int:
    problem = check_runtime()
    if problem:
        print(f"preflight: {problem}", file=sys.stderr)
        return 1
    print("preflight: httptools and aiohttp's C parser are available")
    from gateway_core.tls.groups import GROUPS_STATUS

    print(f"preflight: {GROUPS_STATUS}")
    from gateway_core.utils import native

    print(f"preflight: {native.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
