"""A training job's main process: its entry, then (when asked) the model registered.

The job's unit runs this module (the job environment's Python, as the job user) rather
than the entry itself, so registering is part of the job on the box: it happens whether
anyone follows the job or not (`--detach`, a dropped connection, Ctrl-C). It is not an
agent command: its output is the job's log and its exit status is the entry's, so it
answers no JSON. What registering did goes to REGISTRATION in the job's home, where the
unit's ExecStopPost (jobs.finished) takes it into the job's record.

The entry runs as a child. A stop (cancel, shutdown) signals both, as systemd stops every
process of the unit; an entry killed by a signal ends this process by the same signal,
so systemd sees the entry's own end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..cli import describe
from ..system.failure import AgentFailure
from ..system.layout import CHALLENGER_ALIAS as ALIAS
from .records import REGISTRATION
from .register import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops_agent.train.execute")
    parser.add_argument("--register-as", default="")
    parser.add_argument("--logged-model", default="")
    parser.add_argument("entry", nargs=argparse.REMAINDER, help="-- then the entry's argv")
    args = parser.parse_args(argv)
    entry = args.entry[1:] if args.entry[:1] == ["--"] else args.entry
    if not entry:
        parser.error("no entry to run: give it after --")
    code = subprocess.call(entry)
    if code < 0:  # killed by a signal: end the same way
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    if code == 0 and args.register_as:
        outcome = register_model(os.environ["MLFLOW_RUN_ID"], args.register_as, args.logged_model)
        keep(Path(os.environ["HOME"]) / REGISTRATION, outcome)
    return code


def register_model(run_id: str, name: str, logged_model: str) -> dict[str, Any]:
    """Register the run's model (see register.py); what happened, also said in the log."""
    try:
        answer = register(run_id, name, ALIAS, logged_model)
    except AgentFailure as failure:
        outcome = {"register_error": failure.sentence}
    except Exception as exc:  # MLflow refusing, MLflow down: the job still ends well
        outcome = {"register_error": f"Registering the model as {name!r} failed: {describe(exc)}"}
    else:
        outcome = {"registered": f"{name}/{answer['version']}", "alias": ALIAS}
    if "registered" in outcome:
        print(f"[mlops-box] Registered models:/{outcome['registered']} (alias {ALIAS})")
    else:
        print(f"[mlops-box] Not registered: {outcome['register_error']}", file=sys.stderr)
    return outcome


def keep(path: Path, outcome: dict[str, Any]) -> None:
    """Write `outcome` beside `path` and rename it into place: read whole or not at all."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(outcome))
    partial.replace(path)


if __name__ == "__main__":
    sys.exit(main())
