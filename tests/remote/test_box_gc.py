"""`fab box.gc`'s side here: its argument and what it prints. Pure; the agent's rules are
tests/remote/agent/system/test_gc.py, the whole on a box tests/box/test_environments.py."""

from __future__ import annotations

import pytest

from remote.box.gc import Collected, check_train_days
from remote.errors import ConfigError


def test_what_was_removed_is_listed_with_its_size() -> None:
    done = Collected([("/opt/mlops-box/envs/model-ab", 3 * 1024**3), ("/x.zip", 2048)], 0, False)
    assert done.describe().splitlines() == [
        "Removed 2 items, 0 B in all:",
        "  /opt/mlops-box/envs/model-ab  (3.0 GB)",
        "  /x.zip  (2.0 KB)",
    ]
    assert Collected([("/y", 5)], 5, True).describe().startswith("Would remove 1 items, 5 B")
    assert Collected([], 0, False).describe().startswith("Nothing to remove")


@pytest.mark.parametrize("text", ["x", "-1", "3651", "nan", ""])
def test_bad_train_days_are_one_line(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--train-days is .*: give days from 0 to 3650"):
        check_train_days(text)
    assert check_train_days("0") == 0 and check_train_days("7.5") == 7.5
