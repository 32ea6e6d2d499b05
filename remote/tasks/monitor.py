"""`fab monitor.*`: drift reports of the box's models, their labels, and their schedule."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Any

from invoke import Collection
from invoke.exceptions import Exit

from remote.errors import MonitorError
from remote.local_files import output_folder
from remote.monitor import labels as labels_files
from remote.monitor import schedule as timer
from remote.monitor.drift import DRIFT_EXIT, report
from remote.monitor.options import MODEL_FORMS, drift_request
from remote.ssh.connection import box_connection
from remote.tasks._common import box_of, say, task, user_errors

MODEL_HELP = f"{MODEL_FORMS} (default: the live model)."
SHARE_HELP = "Share of drifted input columns that makes the dataset drift (default 0.5)."
RISE_HELP = "Error rise over the training run's val_rmse that is drift (default 0.2: 20%)."


@task(
    help={
        "model": MODEL_HELP,
        "since": "The window: predictions of the last 30m, 12h, 1d, 2w... (default 24h).",
        "drift_share": SHARE_HELP,
        "max_error_rise": RISE_HELP,
        "out": "Folder for the downloaded report (default: ./drift-reports).",
        "open": "Open the report in the browser.",
    }
)
@user_errors
def drift(
    c: Any,
    model: str = "",
    since: str = "24h",
    drift_share: str = "0.5",
    max_error_rise: str = "0.2",
    out: str = "drift-reports",
    open_: bool = False,
) -> None:
    """Drift report of a model's logged predictions; exit 3 on drift, 1 on errors."""
    request = drift_request(model, since, drift_share, max_error_rise)
    folder = output_folder(out)
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        made = report(conn, request, folder, say=say)
    say(made.describe())
    if open_:
        webbrowser.open(made.html.as_uri())
    if made.drift:
        raise Exit(code=DRIFT_EXIT)


@task(help={"file": "CSV or JSONL: request_id and the true value (named as the target, or label)."})
@user_errors
def labels(c: Any, file: str) -> None:
    """Upload ground truth for logged predictions, joined to them by request id."""
    found = labels_files.read(Path(file).expanduser())
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        uploaded = labels_files.upload(conn, found)
    what = "stored" if uploaded.changed else "already on the box, nothing changed:"
    say(f"{uploaded.count} labels ({found.name}) {what} {uploaded.path}")


@task(
    help={
        "every": "How often: 30m, 12h, 1d... (at least 1m).",
        "off": "Remove the schedule.",
        "model": MODEL_HELP + " An alias is followed at every check.",
        "since": "The window of each check (default: the interval).",
        "drift_share": SHARE_HELP,
        "max_error_rise": RISE_HELP,
    }
)
@user_errors
def schedule(
    c: Any,
    every: str = "",
    off: bool = False,
    model: str = "",
    since: str = "",
    drift_share: str = "0.5",
    max_error_rise: str = "0.2",
) -> None:
    """Run the drift check on the box on a timer (--every 1d), or stop it (--off); show it."""
    if every and off:
        raise MonitorError("Give --every or --off, not both.")
    given = [
        f"--{flag}"
        for flag, value, default in (
            ("model", model, ""),
            ("since", since, ""),
            ("drift-share", drift_share, "0.5"),
            ("max-error-rise", max_error_rise, "0.2"),
        )
        if value != default
    ]
    if given and not every:
        what = "--off removes the schedule" if off else "without --every it only shows it"
        raise MonitorError(
            f"{', '.join(given)} set a schedule's checks: give them with --every ({what})."
        )
    wanted = timer.schedule_of(every, model, since, drift_share, max_error_rise) if every else None
    settings, provider = box_of(c)
    with box_connection(settings, provider) as conn:
        if off:
            changed = timer.disable(conn)
            say(f"Drift checks on {settings.name}: {'removed' if changed else 'none to remove'}")
            return
        if wanted is not None:
            changed = timer.enable(conn, wanted, say=say)
            say(f"{wanted.description}: {'set' if changed else 'already set, nothing changed'}")
        say(timer.describe(conn))


monitor = Collection("monitor", drift, labels, schedule)
