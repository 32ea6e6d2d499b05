"""The one way the project reports what a step changed: a list of what, falsy when nothing."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Changed:
    """What a step changed, in words the user reads; empty (falsy) when nothing did."""

    changes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes)

    def add(self, what: str) -> None:
        self.changes.append(what)

    def merge(self, other: Changed) -> Changed:
        """Add everything `other` changed; return self, so results can be chained."""
        self.changes.extend(other.changes)
        return self

    def __str__(self) -> str:
        return ", ".join(self.changes) if self.changes else "nothing"
