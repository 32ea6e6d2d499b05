"""What MLflow's backend store holds: its kind, where it is, how many experiments and runs.

Run by the MLflow environment's Python under the server's EnvironmentFile, like `db`.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from .store import store_uri


def describe() -> dict[str, Any]:
    uri = store_uri()
    url = urlsplit(uri)
    scheme = url.scheme.split("+")[0]
    where = uri.split(":///", 1)[1] if scheme == "sqlite" else f"{url.hostname}:{url.port or 5432}"
    answer: dict[str, Any] = {"backend": scheme, "where": where}
    sqlalchemy = importlib.import_module("sqlalchemy")
    try:
        engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as db:
                count = "select count(*) from {} where lifecycle_stage = 'active'"
                answer["experiments"] = db.execute(
                    sqlalchemy.text(count.format("experiments"))
                ).scalar()
                answer["runs"] = db.execute(sqlalchemy.text(count.format("runs"))).scalar()
        finally:
            engine.dispose()
    except Exception as exc:  # the counts are a nicety: report the store without them
        answer["count_error"] = type(exc).__name__
    return answer
