"""Control path: ``python -m tier2_gateway``."""

from tier2_gateway.cli import main

raise SystemExit(main())
