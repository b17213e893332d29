"""Data path (benchmark): entry point, ``python bench/run.py [--duration 10] [--runs 3] [--quick]``.

Run as a script, Python puts ``bench/`` first on ``sys.path``; it is replaced by the repository
root so the ``bench`` package and the ``certs`` generator import the same way as under pytest,
and no module in ``bench/`` can shadow a standard-library one.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
