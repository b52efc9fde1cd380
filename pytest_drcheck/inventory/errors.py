"""User mistakes in an inventory: one line each, naming file, line, place, problem and fix."""

from __future__ import annotations

from dataclasses import dataclass


def one_line(text: str) -> str:
    """Text safe to print as part of one line: control characters, line breaks and lone
    surrogates (which a terminal cannot encode) are shown escaped."""
    return "".join(c if c.isprintable() and not "\ud800" <= c <= "\udfff" else ascii(c)[1:-1]
                   for c in text)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    place: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        place = f" {self.place}:" if self.place else ""
        return one_line(f"{where}:{place} {self.message}")


class InventoryError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        # A suite shared by several hosts would report its own mistake once per host.
        unique = list(dict.fromkeys(problems))
        self.problems = sorted(unique, key=lambda p: (p.file, p.line or 0, p.place))
        super().__init__("\n".join(str(p) for p in self.problems))
