"""The box's disk as `fab box.status` shows it, with a warning before it fills.

Environments, model caches, training blobs and MLflow's artifacts all live on the
root file system (/opt, /var/lib, /var/cache); a full disk makes training, deploys and
MLflow fail in ways far from the cause, so the status says so first.
"""

from __future__ import annotations

from remote.system.run import Connection, check, tail

WARN_PERCENT = 85
_GB = 1024**3
WHERE = "/opt/mlops-box /var/lib/mlops-box /var/cache/mlops-box /var/lib/mlflow"


def read_rows(conn: Connection) -> list[tuple[str, str]]:
    """The disk row of the running box."""
    found = check(conn, "df -P -B1 /")
    if not found.ok:
        return [("disk", f"unknown: `df /` failed ({tail(found)})")]
    return disk_rows(found.stdout)


def disk_rows(df_output: str) -> list[tuple[str, str]]:
    """Pure: `df -P -B1 /`'s answer as the status row."""
    try:
        fields = df_output.strip().splitlines()[1].split()
        size, used, free = (int(value) for value in fields[1:4])
    except (IndexError, ValueError):
        return [("disk", f"unknown: `df /` answered {df_output.strip()[:80]!r}")]
    percent = round(100 * used / size) if size else 100
    text = f"{used / _GB:.1f} of {size / _GB:.1f} GB used ({percent}%), {free / _GB:.1f} GB free"
    if percent >= WARN_PERCENT:
        text += (
            "; NEARLY FULL: training, deploys and MLflow fail once it is. `fab box.gc` frees "
            f"what nothing uses; see what takes it with `sudo du -sh {WHERE}` on the box"
        )
    return [("disk", text)]
