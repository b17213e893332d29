"""Shared core of the two-tier multi-cluster gateway (used by tier1_gateway and tier2_gateway)."""

import os as _os

from gateway_core.utils import native_select as _native

__version__ = "0.1.0"

# The request path's compiled modules (``utils/native.py``) run unless the sources are asked
# for, or a compiled module is older than its source (edited since the build).
if _os.environ.get(_native.PURE_ENV) == "1" or _native.stale():
    _native.install_pure_python_finder()
