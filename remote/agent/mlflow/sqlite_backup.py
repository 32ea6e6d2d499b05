"""A consistent copy of a SQLite database, made with SQLite's backup API.

The backup API copies a consistent snapshot even while the server writes; a file copy
of a live database can be torn.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from ..system.failure import AgentFailure


def backup(source: str, dest: str) -> dict[str, Any]:
    if not os.path.isfile(source):
        raise AgentFailure("missing", f"There is no SQLite database at {source}.")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise AgentFailure("backup", f"Could not back up {source}: {exc}.") from None
    finally:
        src.close()
    return {"path": dest, "bytes": os.path.getsize(dest)}
