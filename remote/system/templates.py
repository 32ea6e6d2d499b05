"""The one jinja Environment: every file the project renders comes from remote/templates/.

StrictUndefined, so a missing value is an error rather than an empty string; no
autoescaping, since the outputs are config files, not HTML.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(name: str, **values: Any) -> str:
    """Render remote/templates/<name>."""
    return environment().get_template(name).render(**values)


def render_source(source: str, **values: Any) -> str:
    """Render a template kept outside remote/templates (the user's sshconfig.template)."""
    return environment().from_string(source).render(**values)
