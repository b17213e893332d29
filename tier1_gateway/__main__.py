"""Control path: ``python -m tier1_gateway``."""

from tier1_gateway.cli import main

raise SystemExit(main())
