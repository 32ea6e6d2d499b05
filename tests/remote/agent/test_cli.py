"""The agent's one dispatch: every command listed once, each wired to a handler that
takes exactly its arguments, and a name nothing handles refused instead of run."""

from __future__ import annotations

import inspect
import json

import pytest

from remote.agent import cli
from remote.agent.cli import Arg, Command, Env, OneOf, arg

ALL = [record for records in cli.commands().values() for record in records]


def _dests(record: Command) -> set[str]:
    """The names argparse gives the record's arguments (its own rule: `dest`, else the
    first long option or the positional's name, `-` as `_`)."""
    args = [
        one for item in record.args for one in (item.args if isinstance(item, OneOf) else [item])
    ]
    return {_dest(one) for one in args}


def _dest(one: Arg) -> str:
    if "dest" in one.options:
        return str(one.options["dest"])
    long = [flag for flag in one.flags if flag.startswith("--")]
    return (long or list(one.flags))[0].lstrip("-").replace("-", "_")


@pytest.mark.parametrize("record", ALL, ids=lambda r: r.name)
def test_every_command_has_a_handler_that_takes_exactly_its_arguments(record: Command) -> None:
    handler = cli.resolve(record)
    signature = inspect.signature(handler)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    named = {n for n, p in signature.parameters.items() if p.kind is not p.VAR_KEYWORD}
    required = {
        n
        for n, p in signature.parameters.items()
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    assert required <= _dests(record)
    assert takes_any or _dests(record) <= named


def test_help_lists_every_command_once_grouped_by_noun(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    listed = [
        line.split()[0] for line in text.splitlines() if line.startswith("  ") and line.split()
    ]
    names = [record.name for record in ALL]
    assert sorted(n for n in listed if n in names) == sorted(names)
    for noun in cli.NOUNS:
        assert f"\n{noun}:\n" in text


def test_an_unknown_command_is_a_usage_error_and_nothing_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["no-such-command"])
    assert exit_.value.code == 2
    assert capsys.readouterr().out == ""


def test_a_command_without_a_handler_is_a_usage_error_not_another_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    unwired = Command("unwired", "a record whose handler is missing", Env.SYSTEM, "idle:nothing")
    served = Command("serve", "must not run in its place", Env.SYSTEM, "deploy.no_such_module:x")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["unwired"], {"test": (unwired, served)})
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "`unwired` names no handler (idle:nothing)" in captured.err


def test_two_commands_of_one_name_are_refused() -> None:
    twice = Command("twice", "", Env.SYSTEM, "idle.commands:status", (arg("--dir"),))
    with pytest.raises(ValueError, match="twice"):
        cli.parser({"a": (twice,), "b": (twice,)})


def test_an_exception_no_command_foresaw_is_one_answer_naming_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What MLflow raises for a name it refuses, say: no AgentFailure, yet one JSON answer.
    def crashes() -> dict[str, str]:
        raise ValueError("Invalid model name 'bad/name'.\nNames cannot contain '/'. " + "x" * 400)

    record = Command("crashes", "raises what it did not foresee", Env.SYSTEM, "idle:nothing")
    monkeypatch.setattr(cli, "resolve", lambda _record: crashes)
    assert cli.main(["crashes"], {"test": (record,)}) == 1
    captured = capsys.readouterr()
    answer = json.loads(captured.out)
    assert answer["ok"] is False and answer["kind"] == cli.KIND_UNEXPECTED
    assert answer["error"].startswith(
        "The box's agent failed in `crashes`: ValueError: Invalid model name 'bad/name'. Names"
    )
    assert answer["error"].endswith("...") and len(answer["error"]) < 400
    assert "Traceback" in captured.err and "in crashes" in captured.err  # for the journal
