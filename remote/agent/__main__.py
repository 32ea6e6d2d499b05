"""`python -m mlops_agent <command> [args]`: the agent's one entry point (see cli.py)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
