"""Allow ``python -m proxy``."""

from proxy.run.cli import main

raise SystemExit(main())
