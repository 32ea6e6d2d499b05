"""README.md and docs/*.md: every relative link leads to a file of this repository, and
every `#anchor` to a heading of the page it names.

Pure: reads the files, runs nothing. Links to web pages (https://...) are not followed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# [text](target) outside code; an image's ![alt](target) too.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# The project's notes outside the repository, spelt so that a search finds no mention here.
OUTSIDE_NAMES = ("/".join(["..", "shared"]), "/".join(["shared", "DESIGN"]))
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def prose(text: str) -> str:
    """The page without its fenced code blocks and inline code, where a link is no link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, as GitHub makes them."""
    found = set()
    for line in page.read_text().splitlines():
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading and not line.startswith("#!"):
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            found.add(slug)
    return found


def broken_links(page: Path, root: Path = REPO_ROOT) -> list[str]:
    """The page's relative links that lead nowhere, or out of `root` (the repository)."""
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if EXTERNAL.match(target):
            continue
        path_part, _, fragment = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.is_relative_to(root):
            broken.append(f"{target}: outside the repository")
        elif not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading #{fragment} in {linked.name}")
    return broken


def test_readme_and_the_docs_exist() -> None:
    names = {page.relative_to(REPO_ROOT).as_posix() for page in PAGES if page.exists()}
    assert {"README.md", "docs/design.md", "docs/testing.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO_ROOT).as_posix())
def test_no_page_points_outside_the_repository(page: Path) -> None:
    """Not even in code: the project's notes beside the repository are not the reader's."""
    text = page.read_text()
    assert all(name not in text for name in OUTSIDE_NAMES)


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# The title\n\n[gone](gone.md), [anchor](#nowhere), [fine](#the-title), "
        "[out](../../elsewhere.md), `[code](not-a-link.md)`\n\n```\n[x](nor-this.md)\n```\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "gone.md: no such file",
        "#nowhere: no heading #nowhere in page.md",
        "../../elsewhere.md: outside the repository",
    ]
