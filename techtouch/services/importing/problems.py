"""What a failed import reports: `FILE:ROW: column: problem` lines, in file order, up to a limit."""

from __future__ import annotations

from dataclasses import dataclass, field

# (line in the file, position of the column in the file's kind, column name, message)
Problem = tuple[int, int, str, str]


class ImportFailed(Exception):
    """The file was not imported. `problems` holds one `FILE:ROW: column: problem` line each."""

    def __init__(self, summary: str, problems: list[str]) -> None:
        super().__init__(summary)
        self.problems = problems


@dataclass
class Problems:
    """Problems of one file, in file order; keeps the first `limit` lines and counts the rest.

    The limit keeps a file with a million bad rows from building a million-line report, while the
    counts still say how bad the file is.
    """

    path: str
    limit: int
    lines: list[str] = field(default_factory=list)
    count: int = 0
    bad_rows: int = 0

    def add_chunk(self, found: list[Problem]) -> None:
        """`found`: the problems of one chunk, in any order."""
        found.sort()
        self.bad_rows += len({line for line, *_ in found})
        for line, _, column, message in found:
            self.count += 1
            if len(self.lines) < self.limit:
                self.lines.append(f"{self.path}:{line}: {column}: {message}")

    def listing(self) -> list[str]:
        more = self.count - len(self.lines)
        return [*self.lines, f"… and {more} more"] if more > 0 else list(self.lines)

    def failed(self) -> ImportFailed:
        rows = f"{self.bad_rows} bad row{'s' if self.bad_rows != 1 else ''}"
        if self.count != self.bad_rows:
            rows += f" ({self.count} problems)"
        return ImportFailed(f"{self.path}: {rows}; nothing was imported", self.listing())


def file_failed(path: str, line: int | None, problem: str) -> ImportFailed:
    """A problem with the file as a whole (or its header), found before any row is read."""
    where = f"{path}:{line}" if line is not None else path
    return ImportFailed(f"{path}: {problem}; nothing was imported", [f"{where}: {problem}"])
