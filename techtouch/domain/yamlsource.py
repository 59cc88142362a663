"""YAML loading that remembers where every value came from, so errors name file:line:column.

Journey files are input that people write and review, so loading them is bounded: at most
MAX_BYTES of text, nesting at most MAX_DEPTH deep, and at most MAX_NODES values once every alias
is expanded (a few lines of nested anchors, "billion laughs", would otherwise expand to billions
of values), no alias inside its own anchor, and only plain YAML types (no `!!python/...`,
`!!binary` or other explicit tags). Each refusal is a LocatedError at the place that crossed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Loc = tuple[str | int, ...]

MAX_BYTES = 1_000_000  # a journey is a few kilobytes
MAX_DEPTH = 50  # mappings and lists inside each other
MAX_NODES = 20_000  # values after alias expansion; the shipped journeys have a few hundred each

_CORE = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(_CORE + name for name in ("null", "bool", "int", "float", "str", "timestamp"))
_COLLECTION_TAGS = frozenset(_CORE + name for name in ("map", "seq"))


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
    shown = str(path)
    with path.open("rb") as stream:
        raw = stream.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise LocatedError(shown, 1, 1, f"file larger than {MAX_BYTES} bytes; a journey is a few kilobytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = raw[: exc.start]
        line, column = head.count(b"\n") + 1, len(head) - (head.rfind(b"\n") + 1) + 1
        raise LocatedError(
            shown, line, column, f"not UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None
    return parse_document(text, shown)


def parse_document(text: str, path: str) -> Document:
    if len(text) > MAX_BYTES:
        raise LocatedError(path, 1, 1, f"file larger than {MAX_BYTES} bytes; a journey is a few kilobytes")
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text, path)  # the reader checks every character here
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise LocatedError(path, line, column, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, most controls)
        head = text[: exc.position]
        line, column = head.count("\n") + 1, len(head) - (head.rfind("\n") + 1) + 1
        raise LocatedError(
            path, line, column, f"invalid YAML: character U+{exc.character:04X} is not allowed"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    marks: dict[Loc, Mark] = {}
    data = _to_python(node, (), marks, path) if node is not None else None
    return Document(path, data, marks)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader's composer, counting every value as if aliases were expanded, and bounding depth.

    A node's expanded size is counted when it is composed: an alias adds the size of its anchor's
    node (known, since the anchor is complete), so the count is exact without expanding anything.
    """

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self.path = path
        self.expanded = 0
        self.depth = 0
        self.sizes: dict[int, int] = {}  # id(node) -> expanded size; nodes live as long as the graph

    def _refuse(self, mark: yaml.Mark, message: str) -> LocatedError:
        return LocatedError(self.path, mark.line + 1, mark.column + 1, message)

    def _count(self, size: int, mark: yaml.Mark) -> None:
        self.expanded += size
        if self.expanded > MAX_NODES:
            raise self._refuse(
                mark,
                f"too many values once aliases are expanded (limit {MAX_NODES}): "
                "anchors and aliases are for sharing small pieces",
            )

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self.sizes.get(id(node))
            if size is None:
                raise self._refuse(
                    mark, "an alias inside its own anchor (a recursive structure) is not allowed"
                )
            self._count(size, mark)
            return node
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._refuse(mark, f"nested too deeply (limit {MAX_DEPTH} levels)")
        before = self.expanded
        self._count(1, mark)
        node = super().compose_node(parent, index)
        self.depth -= 1
        self.sizes[id(node)] = self.expanded - before
        return node


def _to_python(node: yaml.Node, loc: Loc, marks: dict[Loc, Mark], path: str) -> Any:
    start = node.start_mark
    quoted = isinstance(node, yaml.ScalarNode) and node.style in ("'", '"')
    marks.setdefault(loc, Mark(start.line + 1, start.column + 1, quoted))
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _COLLECTION_TAGS:
        raise LocatedError(path, start.line + 1, start.column + 1, f"unsupported YAML tag {node.tag!r}")
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
            if not isinstance(key_node, yaml.ScalarNode):
                raise LocatedError(
                    path,
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                    "a key must be a plain value, not a list or mapping",
                )
            key = key_node.value
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
    return _scalar(node, path)


def _scalar(node: yaml.Node, path: str) -> Any:
    """A plain YAML value (string, number, boolean, null, date); a located error for anything else."""
    start = node.start_mark
    if node.tag not in _SCALAR_TAGS:
        raise LocatedError(path, start.line + 1, start.column + 1, f"unsupported YAML tag {node.tag!r}")
    try:
        return yaml.SafeLoader("").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, OverflowError) as exc:
        kind = node.tag.removeprefix(_CORE)
        if kind == "timestamp":
            reason = "a date is YYYY-MM-DD" if isinstance(exc, AttributeError) else str(exc)
        elif "digits" in str(exc):  # Python refuses int() of more than 4300 digits
            reason = f"{len(node.value)} characters is too long for a number"
        else:
            reason = str(exc).split("\n")[0][:120]
        raise LocatedError(
            path, start.line + 1, start.column + 1, f"not a valid {kind}: {node.value[:40]!r} ({reason})"
        ) from None
