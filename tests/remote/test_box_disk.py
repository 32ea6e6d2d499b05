"""`fab box.status`'s disk row: how much of the box's root file system is used, and a
warning before it fills. Pure; the box tier reads a real `df` (test_fab_tasks.py)."""

from __future__ import annotations

import pytest

from remote.box.disk import WARN_PERCENT, disk_rows

GB = 1024**3
HEADER = "Filesystem 1-blocks Used Available Capacity Mounted on\n"


def df(size_gb: float, used_gb: float) -> str:
    size, used = int(size_gb * GB), int(used_gb * GB)
    return HEADER + f"/dev/root {size} {used} {size - used} {round(100 * used / size)}% /\n"


def test_a_roomy_disk_is_one_plain_row() -> None:
    assert disk_rows(df(40, 12.3)) == [("disk", "12.3 of 40.0 GB used (31%), 27.7 GB free")]


@pytest.mark.parametrize(("used", "warned"), [(33.7, False), (34.0, True), (39.9, True)])
def test_a_disk_at_the_threshold_is_warned_about(used: float, warned: bool) -> None:
    ((_, text),) = disk_rows(df(40, used))
    assert ("NEARLY FULL" in text) is warned
    assert WARN_PERCENT == 85


@pytest.mark.parametrize("answer", ["", HEADER, HEADER + "/dev/root x y z 1% /\n"])
def test_an_answer_that_is_not_dfs_is_unknown_not_an_error(answer: str) -> None:
    ((label, text),) = disk_rows(answer)
    assert label == "disk" and text.startswith("unknown: `df /` answered")
