"""A training job as the box records it, and `train.list`'s table of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remote.agent.train.records import FINAL_STATES


@dataclass(frozen=True)
class JobRecord:
    """A job as the box records it."""

    id: str
    state: str
    unit: str
    entry: str
    experiment: str
    run_id: str | None
    env_key: str
    exit_code: int | None
    started_at: str | None
    ended_at: str | None
    duration_s: int | None
    registered: str | None
    register_as: str | None
    register_error: str | None
    run_status: str | None
    error: str | None

    @classmethod
    def of(cls, found: dict[str, Any]) -> JobRecord:
        def text(name: str) -> str | None:
            value = found.get(name)
            return None if value is None else str(value)

        def number(name: str) -> int | None:
            value = found.get(name)
            return None if value is None else int(value)

        return cls(
            id=str(found["id"]),
            state=str(found["state"]),
            unit=str(found["unit"]),
            entry=str(found.get("entry", "")),
            experiment=str(found.get("experiment", "")),
            run_id=text("run_id"),
            env_key=str(found.get("env_key", "")),
            exit_code=number("exit_code"),
            started_at=text("started_at"),
            ended_at=text("ended_at"),
            duration_s=number("duration_s"),
            registered=text("registered"),
            register_as=text("register_as"),
            register_error=text("register_error"),
            run_status=text("run_status"),
            error=text("error"),
        )

    @property
    def ended(self) -> bool:
        return self.state in FINAL_STATES

    def summary(self) -> str:
        """One line: how the job is or ended, for how long, and its MLflow run's status."""
        what = {
            "succeeded": "succeeded",
            "failed": f"failed with exit code {self.exit_code}",
            "oom": "was killed for running out of memory (its --memory-max)",
            "killed": "was cancelled",
            "lost": "was lost: the box stopped or rebooted while it ran",
        }.get(self.state, f"is {self.state}")
        took = ""
        if self.duration_s is not None:
            took = (
                f" after {duration(self.duration_s)}"
                if self.ended
                else " since " + duration(self.duration_s)
            )
        if not self.run_id:
            run = "no MLflow run"
        elif not self.ended:
            run = f"MLflow run {self.run_id}"
        else:
            status = self.run_status or "not marked yet (`fab train.list` retries)"
            run = f"MLflow run {self.run_id} is {status}"
        error = f" ({self.error})" if self.error else ""
        return f"Job {self.id} {what}{took}{error}; {run}."


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    )


def format_jobs(records: list[JobRecord]) -> str:
    """`train.list`'s table, oldest first."""
    if not records:
        return "No training jobs on the box yet: `fab train.run --project DIR`."
    header = ("JOB", "STATE", "EXIT", "STARTED (UTC)", "TOOK", "RUN", "REGISTERED", "ENTRY")
    rows = [header] + [
        (
            r.id,
            r.state,
            "-" if r.exit_code is None else str(r.exit_code),
            (r.started_at or "-").replace("T", " ").rstrip("Z"),
            duration(r.duration_s),
            r.run_id or "-",
            r.registered or ("not registered" if r.register_error else "-"),
            r.entry,
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  "
        + row[-1]
        for row in rows
    )
