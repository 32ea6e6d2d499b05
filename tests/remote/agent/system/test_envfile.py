"""systemd EnvironmentFile lines: what the format cannot hold is refused."""

from __future__ import annotations

import pytest

from remote.agent.system.envfile import env_file_line


def test_env_file_line_refuses_what_the_format_cannot_hold() -> None:
    with pytest.raises(ValueError, match="newline"):
        env_file_line("KEY", "two\nlines")
    with pytest.raises(ValueError, match="not a valid"):
        env_file_line("1KEY", "x")
    with pytest.raises(ValueError, match="not a valid"):
        env_file_line("KEY WITH SPACE", "x")
