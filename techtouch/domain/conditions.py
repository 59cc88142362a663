"""The condition language of journey files, evaluated vectorized over a state frame.

Conditions are written by people in YAML, so they are read by a hand-written tokenizer and
recursive-descent parser (never Python's eval, compile or ast), type-checked against a vocabulary
before anything runs, and every problem names the column of the source where it is. The AST is
then compiled to closures over numpy arrays, one array per referenced column, so a condition costs
a handful of array operations however many rows the frame has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple, NoReturn, get_args

import numpy as np
import pandas as pd

Kind = Literal["number", "bool", "text", "answer"]
KINDS: frozenset[str] = frozenset(get_args(Kind))

# Bounds that keep hostile or accidental input from costing more than a parse: recursion in the
# parser and the compiled closures grows with nesting, so nesting is capped well below Python's limit.
MAX_LENGTH = 2000
MAX_DEPTH = 50

KEYWORDS = frozenset({"and", "or", "not", "in", "is", "answered", "true", "false"})
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
_ORDERINGS = frozenset({"<", "<=", ">", ">="})
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "(", ")", "[", "]", ",")
_SPACE = frozenset(" \t\r\n")
_HINTS = {"=": "; compare with '=='", "&": "; use 'and'", "|": "; use 'or'", "!": "; use 'not' or '!='"}
# ASCII on purpose: [0-9] rather than \d, which would admit other scripts' digits.
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?%?")
# Words are matched case-insensitively so that an uppercase letter gets a precise message.
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_NUMERIC = frozenset({"number", "answer"})
_TEXTUAL = frozenset({"text", "answer"})


class ConditionError(ValueError):
    """A located problem: `column` is 1-based within the condition's source text."""

    def __init__(self, message: str, column: int, source: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column
        self.source = source

    def __reduce__(self) -> tuple[type[ConditionError], tuple[str, int, str]]:
        # Keep the fields when pickled, e.g. when a flow run ships the error between processes.
        return (type(self), (self.message, self.column, self.source))


@dataclass(frozen=True)
class Vocabulary:
    """What a condition may refer to; a journey builds one from the state frame's schema and its params."""

    names: Mapping[str, Kind]
    families: Mapping[str, Kind] = field(default_factory=dict)
    constants: Mapping[str, float | int | str | bool] = field(default_factory=dict)
    # Families whose members are records with fields: `cta.<reason>.<field>`, each field its kind.
    records: Mapping[str, Mapping[str, Kind]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for mapping in (self.names, self.families):
            for name, kind in mapping.items():
                if kind not in KINDS:
                    raise ValueError(f"{name!r} has kind {kind!r}; kinds are {', '.join(sorted(KINDS))}")
        for name, value in self.constants.items():
            if not isinstance(value, bool | int | float | str):
                raise ValueError(f"constant {name!r} must be a number, string or bool, got {value!r}")

    def known(self) -> list[str]:
        return sorted(
            {
                *self.names,
                *self.constants,
                *(f"{family}.<name>" for family in self.families),
                *(f"{family}.<name>.{f}" for family, fields in self.records.items() for f in fields),
            }
        )


# --- tokens ---------------------------------------------------------------------------------------


class _Token(NamedTuple):
    kind: Literal["number", "string", "name", "word", "op", "end"]
    text: str  # as written, for messages
    value: float | str | None
    column: int


def _show(text: str) -> str:
    return repr(text if len(text) <= 30 else text[:27] + "...")


def _tokenize(source: str) -> Iterator[_Token]:
    """Yield tokens lazily, so that the leftmost problem is the one reported."""
    i, size = 0, len(source)
    while i < size:
        char = source[i]
        column = i + 1
        if char in _SPACE:
            i += 1
        elif char in "'\"":
            token, i = _string(source, i)
            yield token
        elif match := _NUMBER.match(source, i):
            text = match.group()
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
            yield _Token("number", text, value, column)
            i = match.end()
        elif match := _WORD.match(source, i):
            text = match.group()
            upper = next((k for k, c in enumerate(text) if "A" <= c <= "Z"), None)
            if upper is not None:
                raise ConditionError(
                    f"unexpected {text[upper]!r}: names are lowercase", column + upper, source
                )
            yield _Token("word" if text in KEYWORDS else "name", text, None, column)
            i = match.end()
        elif op := next((o for o in _OPERATORS if source.startswith(o, i)), None):
            yield _Token("op", op, None, column)
            i += len(op)
        else:
            raise ConditionError(f"unexpected {char!r}{_HINTS.get(char, '')}", column, source)


def _string(source: str, start: int) -> tuple[_Token, int]:
    quote = source[start]
    chars: list[str] = []
    i = start + 1
    while i < len(source):
        char = source[i]
        if char == quote:
            return _Token("string", source[start : i + 1], "".join(chars), start + 1), i + 1
        if char == "\\":
            if i + 1 >= len(source):
                break
            escaped = source[i + 1]
            if escaped not in "\\'\"":
                raise ConditionError(
                    f"unsupported escape '\\{escaped}'; only \\', \\\" and \\\\ are", i + 1, source
                )
            chars.append(escaped)
            i += 2
        else:
            chars.append(char)
            i += 1
    raise ConditionError("unterminated string", start + 1, source)


# --- syntax tree: `column` is where the node starts, for messages ------------------------------------


@dataclass(frozen=True)
class _Literal:
    value: float | str | bool
    kind: Kind
    column: int


@dataclass(frozen=True)
class _Name:
    name: str
    family: bool  # a family member may be absent from the frame: that means "no data"
    kind: Kind
    column: int


@dataclass(frozen=True)
class _Not:
    operand: _Node
    column: int


@dataclass(frozen=True)
class _Logic:
    op: Literal["and", "or"]
    operands: tuple[_Node, ...]  # flat, so long chains cost no recursion
    column: int


@dataclass(frozen=True)
class _Arith:
    first: _Node
    rest: tuple[tuple[str, _Node], ...]  # flat, as for _Logic
    column: int


@dataclass(frozen=True)
class _Negate:
    operand: _Node
    column: int


@dataclass(frozen=True)
class _Compare:
    op: str
    left: _Node
    right: _Node
    op_column: int
    column: int


@dataclass(frozen=True)
class _Member:
    negated: bool
    left: _Node
    items: tuple[_Literal, ...]
    op_column: int
    column: int


@dataclass(frozen=True)
class _Answered:
    negated: bool
    operand: _Node
    column: int


_Node = _Literal | _Name | _Not | _Logic | _Arith | _Negate | _Compare | _Member | _Answered


def _literal(token: _Token) -> _Literal | None:
    if token.kind == "number" and isinstance(token.value, float):
        return _Literal(token.value, "number", token.column)
    if token.kind == "string" and isinstance(token.value, str):
        return _Literal(token.value, "text", token.column)
    if token.kind == "word" and token.text in ("true", "false"):
        return _Literal(token.text == "true", "bool", token.column)
    return None


class _Parser:
    """Recursive descent, one method per precedence level: or < and < not < comparison < +- < */ < unary."""

    def __init__(self, source: str, vocabulary: Vocabulary) -> None:
        self.source = source
        self.vocabulary = vocabulary
        self.stream = _tokenize(source)
        self.end = _Token("end", "", None, len(source) + 1)
        self.buffer: list[_Token] = []
        self.depth = 0

    def parse(self) -> _Node:
        if self.peek().kind == "end":
            raise ConditionError("empty condition", 1, self.source)
        node = self.parse_or()
        if self.peek().kind != "end":
            self.unexpected(self.peek())
        return node

    # helpers

    def peek(self, ahead: int = 0) -> _Token:
        while len(self.buffer) <= ahead:
            self.buffer.append(next(self.stream, self.end))
        return self.buffer[ahead]

    def advance(self) -> _Token:
        token = self.peek()
        if token.kind != "end":
            self.buffer.pop(0)
        return token

    def at(self, text: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind in ("word", "op") and token.text == text

    def fail(self, message: str, token: _Token) -> NoReturn:
        raise ConditionError(message, token.column, self.source)

    def unexpected(self, token: _Token) -> NoReturn:
        if token.kind == "end":
            self.fail("unexpected end of condition", token)
        self.fail(f"unexpected {_show(token.text)}", token)

    @contextmanager
    def nested(self, token: _Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"too deeply nested (at most {MAX_DEPTH} levels)", token)
        yield
        self.depth -= 1

    # grammar

    def parse_or(self) -> _Node:
        operands = [self.parse_and()]
        while self.at("or"):
            self.advance()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else _Logic("or", tuple(operands), operands[0].column)

    def parse_and(self) -> _Node:
        operands = [self.parse_not()]
        while self.at("and"):
            self.advance()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else _Logic("and", tuple(operands), operands[0].column)

    def parse_not(self) -> _Node:
        if not self.at("not"):
            return self.parse_comparison()
        token = self.advance()
        with self.nested(token):
            return _Not(self.parse_not(), token.column)

    def parse_comparison(self) -> _Node:
        left = self.parse_additive()
        node = self.comparison_tail(left)
        if node is not left and self.comparison_follows():
            self.fail("comparisons cannot be chained; join them with 'and'", self.peek())
        return node

    def comparison_follows(self) -> bool:
        token = self.peek()
        return (
            (token.kind == "op" and token.text in _COMPARISONS)
            or self.at("in")
            or self.at("is")
            or (self.at("not") and self.at("in", 1))
        )

    def comparison_tail(self, left: _Node) -> _Node:
        token = self.peek()
        if token.kind == "op" and token.text in _COMPARISONS:
            self.advance()
            return _Compare(token.text, left, self.parse_additive(), token.column, left.column)
        if self.at("in") or (self.at("not") and self.at("in", 1)):
            negated = self.at("not")
            if negated:
                self.advance()
            self.advance()
            return _Member(negated, left, self.parse_list(), token.column, left.column)
        if self.at("is"):
            self.advance()
            negated = self.at("not")
            if negated:
                self.advance()
            if not self.at("answered"):
                self.fail("expected 'answered' after 'is'" + (" not" if negated else ""), self.peek())
            self.advance()
            return _Answered(negated, left, left.column)
        return left

    def parse_list(self) -> tuple[_Literal, ...]:
        if not self.at("["):
            self.fail("expected a list like ['a', 'b'] after 'in'", self.peek())
        self.advance()
        items: list[_Literal] = []
        if self.at("]"):
            self.advance()
            return ()
        while True:
            token = self.peek()
            item = self.list_item()
            if items and item.kind != items[0].kind:
                self.fail(f"list items must all be of one kind: {item.kind} after {items[0].kind}", token)
            items.append(item)
            if self.at("]"):
                self.advance()
                return tuple(items)
            if not self.at(","):
                self.unexpected(self.peek())
            self.advance()

    def list_item(self) -> _Literal:
        token = self.advance()
        if token.kind == "op" and token.text == "-" and self.peek().kind == "number":
            literal = _literal(self.advance())
            assert literal is not None and isinstance(literal.value, float)
            return _Literal(-literal.value, "number", token.column)
        if literal := _literal(token):
            return literal
        if token.kind == "end":
            self.unexpected(token)
        self.fail(
            f"a list holds only literal values (numbers, strings, true, false), not {_show(token.text)}",
            token,
        )

    def parse_additive(self) -> _Node:
        return self.chain(("+", "-"), self.parse_term)

    def parse_term(self) -> _Node:
        return self.chain(("*", "/"), self.parse_unary)

    def chain(self, ops: tuple[str, ...], operand: Callable[[], _Node]) -> _Node:
        first = operand()
        rest: list[tuple[str, _Node]] = []
        while self.peek().kind == "op" and self.peek().text in ops:
            rest.append((self.advance().text, operand()))
        return _Arith(first, tuple(rest), first.column) if rest else first

    def parse_unary(self) -> _Node:
        if not self.at("-"):
            return self.parse_primary()
        token = self.advance()
        with self.nested(token):
            return _Negate(self.parse_unary(), token.column)

    def parse_primary(self) -> _Node:
        token = self.advance()
        if literal := _literal(token):
            return literal
        if token.kind == "name":
            return self.resolve(token)
        if token.kind == "op" and token.text == "(":
            with self.nested(token):
                inner = self.parse_or()
            if not self.at(")"):
                if self.peek().kind == "end":
                    self.fail(f"missing ')' for the '(' at column {token.column}", self.peek())
                self.unexpected(self.peek())
            self.advance()
            return replace(inner, column=token.column)
        if token.kind == "op" and token.text == "[":
            self.fail("a list can only follow 'in' or 'not in'", token)
        self.unexpected(token)

    def resolve(self, token: _Token) -> _Node:
        name, vocabulary = token.text, self.vocabulary
        if name in vocabulary.names:
            return _Name(name, False, vocabulary.names[name], token.column)
        if name in vocabulary.constants:
            value = vocabulary.constants[name]
            if isinstance(value, bool):
                return _Literal(value, "bool", token.column)
            if isinstance(value, str):
                return _Literal(value, "text", token.column)
            return _Literal(float(value), "number", token.column)
        family, dot, member = name.partition(".")
        if family in vocabulary.records:
            fields = vocabulary.records[family]
            record, dot2, field_name = member.rpartition(".")
            if not (dot and dot2 and record and field_name in fields):
                self.fail(
                    f"'{name}' must name a field, as in {family}.<name>.<field>; fields: {', '.join(fields)}",
                    token,
                )
            return _Name(name, True, fields[field_name], token.column)
        if dot and family in vocabulary.families:
            return _Name(name, True, vocabulary.families[family], token.column)
        if name in vocabulary.families:
            self.fail(f"'{name}' needs a member, as in {name}.<name>", token)
        self.fail(f"unknown name '{name}'; known names: {', '.join(vocabulary.known())}", token)


# --- evaluation ---------------------------------------------------------------------------------------


class _Context:
    """One evaluation: the frame plus each column's converted views, computed once however often used."""

    def __init__(self, frame: pd.DataFrame, source: str) -> None:
        self.frame = frame
        self.size = len(frame)
        self.source = source
        self.memo: dict[tuple[str, str], np.ndarray] = {}

    def view(self, node: _Name, view: Literal["present", "number", "text", "truth"]) -> np.ndarray:
        key = (node.name, view)
        if key not in self.memo:
            if node.name in self.frame.columns:
                series: pd.Series | None = self.frame[node.name]
            elif node.family:
                series = None
            else:
                raise ConditionError(f"the state frame has no column '{node.name}'", node.column, self.source)
            self.memo[key] = _VIEWS[view](series, self.size)
        return self.memo[key]


def _present_view(series: pd.Series | None, size: int) -> np.ndarray:
    if series is None:
        return np.zeros(size, dtype=bool)
    return series.notna().to_numpy(dtype=bool)


def _number_view(series: pd.Series | None, size: int) -> np.ndarray:
    if series is None:
        return np.full(size, np.nan)
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    # to_numeric turns NaT into a huge negative integer; missing stays missing.
    return np.where(series.notna().to_numpy(dtype=bool), numbers, np.nan)


def _text_view(series: pd.Series | None, size: int) -> np.ndarray:
    out = np.full(size, None, dtype=object)
    if series is not None:
        present = np.flatnonzero(series.notna().to_numpy(dtype=bool))
        if len(present):
            out[present] = series.iloc[present].astype(str).to_numpy(dtype=object)
    return out


def _truth_view(series: pd.Series | None, size: int) -> np.ndarray:
    if series is None:
        return np.zeros(size, dtype=bool)
    if series.dtype == bool:
        return series.to_numpy(dtype=bool)
    out = np.zeros(size, dtype=bool)
    present = np.flatnonzero(series.notna().to_numpy(dtype=bool))
    if len(present):
        out[present] = series.iloc[present].astype(bool).to_numpy(dtype=bool)
    return out


_VIEWS: dict[str, Callable[[pd.Series | None, int], np.ndarray]] = {
    "present": _present_view,
    "number": _number_view,
    "text": _text_view,
    "truth": _truth_view,
}

_Fn = Callable[[_Context], np.ndarray]


@dataclass(frozen=True)
class _Value:
    """A compiled node: its kind and the views its kind allows (None where the type checker forbids)."""

    kind: Kind
    present: _Fn
    number: _Fn | None = None
    text: _Fn | None = None
    truth: _Fn | None = None


def _divide(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.where(right == 0, np.nan, left / right)


_ARITHMETIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": _divide,
}
_RELATIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


def _always(ctx: _Context) -> np.ndarray:
    return np.ones(ctx.size, dtype=bool)


def _condition(truth: _Fn) -> _Value:
    return _Value("bool", _always, truth=truth)


class _Compiler:
    def __init__(self, source: str) -> None:
        self.source = source
        self.columns: dict[str, int] = {}

    def fail(self, message: str, column: int) -> NoReturn:
        raise ConditionError(message, column, self.source)

    def compile(self, node: _Node) -> _Value:
        match node:
            case _Literal():
                return self.literal(node)
            case _Name():
                self.columns.setdefault(node.name, node.column)
                return self.name(node)
            case _Not():
                operand = self.condition(node.operand, "'not'")
                return _condition(lambda ctx: ~operand(ctx))
            case _Logic():
                parts = [self.condition(op, f"'{node.op}'") for op in node.operands]
                combine = np.logical_and if node.op == "and" else np.logical_or
                return _condition(lambda ctx: combine.reduce([part(ctx) for part in parts]))
            case _Arith():
                return self.arithmetic(node)
            case _Negate():
                negated = self.number(node.operand, "'-'")
                return self.numeric(lambda ctx: -negated(ctx))
            case _Compare():
                return self.comparison(node)
            case _Member():
                return self.membership(node)
            case _Answered():
                present = self.compile(node.operand).present
                if node.negated:
                    return _condition(lambda ctx: ~present(ctx))
                return _condition(present)
        raise TypeError(f"not a condition node: {node!r}")

    def condition(self, node: _Node, operator: str) -> _Fn:
        value = self.compile(node)
        if value.truth is None:
            self.fail(f"{operator} needs true or false, got {value.kind}", node.column)
        return value.truth

    def number(self, node: _Node, operator: str) -> _Fn:
        value = self.compile(node)
        if value.number is None:
            self.fail(f"{operator} needs numbers, got {value.kind}", node.column)
        return value.number

    @staticmethod
    def numeric(number: _Fn) -> _Value:
        return _Value("number", lambda ctx: ~np.isnan(number(ctx)), number=number)

    @staticmethod
    def literal(node: _Literal) -> _Value:
        value = node.value
        if node.kind == "number":
            known = not math.isnan(float(value))
            return _Value(
                "number",
                lambda ctx: np.full(ctx.size, known),
                number=lambda ctx: np.full(ctx.size, value, dtype="float64"),
            )
        if node.kind == "text":
            return _Value("text", _always, text=lambda ctx: np.full(ctx.size, value, dtype=object))
        return _condition(lambda ctx: np.full(ctx.size, value, dtype=bool))

    @staticmethod
    def name(node: _Name) -> _Value:
        def view(kind: Literal["present", "number", "text", "truth"]) -> _Fn:
            return lambda ctx: ctx.view(node, kind)

        numeric = node.kind in _NUMERIC
        textual = node.kind in _TEXTUAL
        return _Value(
            node.kind,
            view("present"),
            number=view("number") if numeric else None,
            text=view("text") if textual else None,
            truth=view("truth") if node.kind == "bool" else None,
        )

    def arithmetic(self, node: _Arith) -> _Value:
        first = self.number(node.first, f"'{node.rest[0][0]}'")
        rest = [(_ARITHMETIC[op], self.number(operand, f"'{op}'")) for op, operand in node.rest]

        def number(ctx: _Context) -> np.ndarray:
            total = first(ctx)
            for apply, operand in rest:
                total = apply(total, operand(ctx))
            return total

        return self.numeric(number)

    def comparison(self, node: _Compare) -> _Value:
        left, right = self.compile(node.left), self.compile(node.right)
        relation = _RELATIONS[node.op]
        kinds = {left.kind, right.kind}
        if node.op in _ORDERINGS:
            bad = next((kind for kind in (left.kind, right.kind) if kind not in _NUMERIC), None)
            if bad is not None:
                self.fail(f"'{node.op}' needs numbers on both sides, got {bad}", node.op_column)
        if kinds <= _NUMERIC and (node.op in _ORDERINGS or kinds != {"answer"}):
            # numbers, and a survey answer against a number: numerically; NaN never matches
            lnum, rnum = left.number, right.number
            assert lnum is not None and rnum is not None

            def numbers(ctx: _Context) -> np.ndarray:
                lv, rv = lnum(ctx), rnum(ctx)
                return relation(lv, rv) & ~np.isnan(lv) & ~np.isnan(rv)

            return _condition(numbers)
        if kinds <= _TEXTUAL:
            ltext, rtext = left.text, right.text
            assert ltext is not None and rtext is not None

            def texts(ctx: _Context) -> np.ndarray:
                same = np.asarray(ltext(ctx) == rtext(ctx), dtype=bool)
                return (same if node.op == "==" else ~same) & left.present(ctx) & right.present(ctx)

            return _condition(texts)
        if kinds == {"bool"}:
            ltruth, rtruth = left.truth, right.truth
            assert ltruth is not None and rtruth is not None

            def truths(ctx: _Context) -> np.ndarray:
                return relation(ltruth(ctx), rtruth(ctx)) & left.present(ctx) & right.present(ctx)

            return _condition(truths)
        self.fail(f"cannot compare {left.kind} with {right.kind}", node.op_column)

    def membership(self, node: _Member) -> _Value:
        left = self.compile(node.left)
        values = [item.value for item in node.items]
        kind = node.items[0].kind if node.items else None
        negated = node.negated

        def finish(hits: _Fn, known: _Fn) -> _Value:
            return _condition(lambda ctx: (~hits(ctx) if negated else hits(ctx)) & known(ctx))

        if kind is None:
            return finish(lambda ctx: np.zeros(ctx.size, dtype=bool), left.present)
        if kind == "number" and left.number is not None:
            number = left.number
            return finish(lambda ctx: np.isin(number(ctx), values), lambda ctx: ~np.isnan(number(ctx)))
        if kind == "text" and left.text is not None:
            text = left.text
            return finish(
                lambda ctx: pd.Series(text(ctx), dtype=object).isin(values).to_numpy(dtype=bool),
                left.present,
            )
        if kind == "bool" and left.truth is not None:
            truth = left.truth
            return finish(lambda ctx: np.isin(truth(ctx), values), left.present)
        self.fail(f"cannot compare {left.kind} with a list of {kind} values", node.op_column)


# --- public -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """A compiled condition: parse and type-check once, evaluate on every run."""

    source: str
    columns: frozenset[str]
    _truth: _Fn = field(repr=False, compare=False)

    def evaluate(self, frame: pd.DataFrame) -> pd.Series:
        """True where the condition holds; missing data never holds (see the README's null semantics)."""
        with np.errstate(all="ignore"):
            truth = self._truth(_Context(frame, self.source))
        return pd.Series(np.asarray(truth, dtype=bool), index=frame.index, dtype=bool)

    def explain_rows(self, frame: pd.DataFrame, mask: np.ndarray) -> list[dict[str, object]]:
        """What the condition saw on each row of `mask` (a CTA's "why it fired"): plain Python
        values, floats rounded to 4 places, missing as None."""
        columns = sorted(self.columns)
        picked = {c: frame[c].to_numpy(dtype=object)[mask] if c in frame.columns else None for c in columns}
        count = int(np.count_nonzero(mask))
        rows: list[dict[str, object]] = []
        for i in range(count):
            row: dict[str, object] = {}
            for c in columns:
                cell = picked[c]
                value = _python(cell[i]) if cell is not None else None
                row[c] = round(value, 4) if isinstance(value, float) else value
            rows.append(row)
        return rows

    def explain(self, frame: pd.DataFrame, index: object) -> dict[str, object]:
        """Show what the condition saw on one row, so `techtouch preview` can say why it held or not."""
        if index not in frame.index:
            raise KeyError(index)
        return {
            column: _python(frame.at[index, column]) if column in frame.columns else None
            for column in sorted(self.columns)
        }


def _python(value: Any) -> object:  # a cell of any dtype: pd.isna has no overload for object
    if isinstance(value, np.generic):
        value = value.item()
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return value


def compile_condition(source: str, vocabulary: Vocabulary) -> Condition:
    """Parse, resolve and type-check `source`; every problem is a ConditionError at its column."""
    if len(source) > MAX_LENGTH:
        raise ConditionError(
            f"condition is too long ({len(source)} characters; at most {MAX_LENGTH})", MAX_LENGTH + 1, source
        )
    try:
        tree = _Parser(source, vocabulary).parse()
    except RecursionError:  # MAX_DEPTH needs ~500 frames; only a caller already deep in the stack gets here
        raise ConditionError("too deeply nested", 1, source) from None
    compiler = _Compiler(source)
    root = compiler.compile(tree)
    if root.truth is None:
        raise ConditionError(f"condition must be true or false, got {root.kind}", tree.column, source)
    return Condition(source, frozenset(compiler.columns), root.truth)
