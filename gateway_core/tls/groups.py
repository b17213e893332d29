"""Control path: the key-exchange groups every TLS context offers: X25519, P-256 and P-384.

OpenSSL's default list adds X448 and P-521, which Mozilla's intermediate profile leaves out.
Python's ``ssl`` cannot set a group list (``set_ecdh_curve`` sets a single curve), so this module
calls OpenSSL's ``SSL_CTX_set1_groups_list`` itself, through ctypes, on the ``SSL_CTX*`` that
CPython keeps right after the object header of an ``ssl.SSLContext``.

Nothing is trusted blindly. The symbols are looked up through CPython's own ``_ssl`` module, so
they come from the OpenSSL it uses. Before the pointer is used, ``SSL_CTX_get_options`` called
on it must report exactly the options Python reports for a probe context, for two different
option sets. If anything does not hold, ``restrict_groups`` does nothing and returns False;
``GROUPS_STATUS`` then says why. The gateway logs that as a warning at start, and the preflight
check prints it.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass

_log = logging.getLogger("gateway.tls")

DEFAULT_GROUPS = "X25519:P-256:P-384"
"""Mozilla intermediate's groups, X25519 first, as Envoy offers them."""

_SSL_CTRL_SET_GROUPS_LIST = 92  # SSL_CTRL_SET_GROUPS_LIST in openssl/ssl.h (1.1.0 and later)


@dataclass(frozen=True, slots=True)
class _Binding:
    ctrl: Callable[..., int]
    get_options: Callable[..., int]
    offset: int


def _bind() -> tuple[_Binding | None, str]:
    """The OpenSSL functions and the ``SSL_CTX*`` offset, checked; or None and why not."""
    if sys.implementation.name != "cpython":
        return None, f"not CPython ({sys.implementation.name})"
    import _ssl

    try:
        lib = ctypes.CDLL(_ssl.__file__)
        ctrl = lib.SSL_CTX_ctrl
        get_options = lib.SSL_CTX_get_options
    except (OSError, AttributeError) as exc:
        return None, f"OpenSSL symbols not reachable through {_ssl.__file__}: {exc}"
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
    ctrl.restype = ctypes.c_long
    get_options.argtypes = [ctypes.c_void_p]
    get_options.restype = ctypes.c_uint64
    offset = object.__basicsize__  # PySSLContext: PyObject_HEAD, then SSL_CTX *ctx
    if ssl.SSLContext.__basicsize__ < offset + ctypes.sizeof(ctypes.c_void_p):
        return None, "ssl.SSLContext is smaller than expected"
    binding = _Binding(ctrl, get_options, offset)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for extra in (ssl.OP_NO_TICKET, ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION):
        probe.options = (probe.options & ~_PROBE_BITS) | extra
        pointer = _pointer(probe, binding)
        if not pointer or get_options(pointer) != int(probe.options):
            return None, "the SSL_CTX pointer of ssl.SSLContext could not be verified"
    return binding, "ok"


_PROBE_BITS = ssl.OP_NO_TICKET | ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


def _pointer(ctx: ssl.SSLContext, binding: _Binding) -> int | None:
    value: int | None = ctypes.c_void_p.from_address(id(ctx) + binding.offset).value
    return value


_BINDING, _BIND_STATUS = _bind()
GROUPS_STATUS = (
    f"TLS groups {DEFAULT_GROUPS} set on every context (SSL_CTX_set1_groups_list)"
    if _BINDING is not None
    else f"TLS groups NOT restricted ({_BIND_STATUS}): OpenSSL's default list, with X448 and "
    "P-521, is offered"
)


@functools.cache
def _warn_unrestricted() -> None:
    _log.warning("%s", GROUPS_STATUS)


def restrict_groups(ctx: ssl.SSLContext, groups: str = DEFAULT_GROUPS) -> bool:
    """Offer only ``groups`` on ``ctx``; False (and a warning) when that is not possible."""
    if _BINDING is None:
        _warn_unrestricted()
        return False
    pointer = _pointer(ctx, _BINDING)
    if not pointer or _BINDING.get_options(pointer) != int(ctx.options):
        _log.warning("TLS groups not restricted: the context's SSL_CTX pointer did not verify")
        return False
    if _BINDING.ctrl(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode("ascii")) != 1:
        _log.warning("TLS groups not restricted: OpenSSL refused the list %s", groups)
        return False
    return True
