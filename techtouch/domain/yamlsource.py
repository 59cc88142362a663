"""YAML loading that remembers where every value came from, so errors name file:line:column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based
    quoted: bool = False  # the scalar starts after a quote character


@dataclass
class LocatedError(Exception):
    """One problem at a place in a file: `path:line:column: message`."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


@dataclass
class Document:
    path: str
    data: Any
    marks: dict[Loc, Mark]

    def mark(self, loc: Loc) -> Mark:
        """The mark of `loc`, or of its nearest ancestor that exists in the file."""
        for end in range(len(loc), -1, -1):
            found = self.marks.get(tuple(loc[:end]))
            if found is not None:
                return found
        return Mark(1, 1)

    def error(self, loc: Loc, message: str, offset: int = 0) -> LocatedError:
        mark = self.mark(loc)
        return LocatedError(self.path, mark.line, mark.column + offset + int(mark.quoted), message)


def load_document(path: Path) -> Document:
    text = path.read_text(encoding="utf-8")
    return parse_document(text, str(path))


def parse_document(text: str, path: str) -> Document:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise LocatedError(path, line, column, f"invalid YAML: {exc.problem or exc}") from None
    marks: dict[Loc, Mark] = {}
    data = _to_python(node, (), marks, path) if node is not None else None
    return Document(path, data, marks)


def _to_python(node: yaml.Node, loc: Loc, marks: dict[Loc, Mark], path: str) -> Any:
    start = node.start_mark
    quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
    marks.setdefault(loc, Mark(start.line + 1, start.column + 1, quoted))
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise LocatedError(
                    path,
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                    "merge keys (<<) are not supported; use an anchor on the whole value",
                )
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            if key in result:
                raise LocatedError(
                    path,
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                    f"duplicate key {key!r}",
                )
            result[key] = _to_python(value_node, (*loc, key), marks, path)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), marks, path) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node, deep=True)
