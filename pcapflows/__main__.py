"""``python -m pcapflows`` runs the same command as ``pcapflows``."""

from pcapflows.cli import main

raise SystemExit(main())
