"""`python -m edge_agent` runs the command line."""

from edge_agent.cli import main

raise SystemExit(main())
