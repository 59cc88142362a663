from __future__ import annotations

import builtins
import os
import pickle
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from techtouch.domain.conditions import (
    MAX_DEPTH,
    MAX_LENGTH,
    Condition,
    ConditionError,
    Vocabulary,
    compile_condition,
)

VOCABULARY = Vocabulary(
    names={
        "segment": "text",
        "arr": "number",
        "paused": "bool",
        "logins_14d": "number",
        "usage_change_30d": "number",
        "days_since_start": "number",
        "renewal_signed": "bool",
    },
    families={"milestone": "bool", "survey": "answer", "entry": "number"},
    constants={"params.drop": -0.3, "params.lead_days": 90, "params.color": "green", "params.strict": True},
)


def state() -> pd.DataFrame:
    """Four accounts with the awkward dtypes a real state frame has: nullable ints, pandas strings, Nones."""
    return pd.DataFrame(
        {
            "segment": ["tech_touch", None, "high", "tech_touch"],
            "arr": [1000.0, np.nan, 0.0, 250.0],
            "paused": [True, None, False, False],
            "logins_14d": pd.array([0, None, 3, 12], dtype="Int64"),
            "usage_change_30d": [-0.5, 0.1, np.nan, -0.3],
            "days_since_start": [70, 10, 100, 61],
            "renewal_signed": [False, True, False, True],
            "milestone.configured": pd.array([True, False, None, True], dtype="boolean"),
            "survey.nps": pd.array(["10", None, "x", "6"], dtype="string"),
            "survey.renewal": ["unsure", "likely", None, "not_likely"],
            "entry.baseline": pd.array([10.0, None, 0.0, 4.0], dtype="Float64"),
        },
        index=pd.Index(["A0", "A1", "A2", "A3"], name="account_id"),
    )


def holds(source: str, frame: pd.DataFrame | None = None) -> list[bool]:
    frame = state() if frame is None else frame
    result = compile_condition(source, VOCABULARY).evaluate(frame)
    assert result.dtype == bool
    assert result.index.equals(frame.index)
    return result.tolist()


def error(source: str) -> ConditionError:
    with pytest.raises(ConditionError) as caught:
        compile_condition(source, VOCABULARY)
    return caught.value


# --- operators and precedence -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("arr == 1000", [True, False, False, False]),
        ("arr != 1000", [False, False, True, True]),
        ("arr < 250", [False, False, True, False]),
        ("arr <= 250", [False, False, True, True]),
        ("arr > 250", [True, False, False, False]),
        ("arr >= 250", [True, False, False, True]),
        ("segment == 'tech_touch'", [True, False, False, True]),
        ('segment != "high"', [True, False, False, True]),
        ("paused", [True, False, False, False]),
        ("not paused", [False, True, True, True]),
        ("paused == false", [False, False, True, True]),
        ("paused or renewal_signed", [True, True, False, True]),
        ("paused and renewal_signed", [False, False, False, False]),
        ("arr + 250 == 500", [False, False, False, True]),
        ("arr - 250 == 0", [False, False, False, True]),
        ("arr * 2 == 500", [False, False, False, True]),
        ("arr / 4 == 62.5", [False, False, False, True]),
        ("-arr < -500", [True, False, False, False]),
    ],
)
def test_each_operator(source: str, expected: list[bool]) -> None:
    assert holds(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "1 + 2 * 3 == 7",
        "(1 + 2) * 3 == 9",
        "10 - 2 - 3 == 5",
        "8 / 4 / 2 == 1",
        "-2 * 3 == -6",
        "- -2 == 2",
        "2 * -3 == -6",
        "true or false and false",
        "not false and true",
        "not (true and false)",
        "not 1 > 2",
        "(1 < 2) == true",
        "1e3 == 1000",
        "0.5 == 50%",
        "12.5% == 0.125",
        "-30% == -0.3",
        "'it\\'s' == \"it's\"",
        "'a\\\\b' != 'ab'",
    ],
)
def test_precedence_and_literals(source: str) -> None:
    assert holds(source) == [True] * 4


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("not true or true", [True] * 4),
        ("true or true and false", [True] * 4),
        ("(true or true) and false", [False] * 4),
        ("not not paused", [True, False, False, False]),
    ],
)
def test_boolean_precedence(source: str, expected: list[bool]) -> None:
    assert holds(source) == expected


def test_percentages_compare_with_fractions() -> None:
    assert holds("usage_change_30d <= -30%") == [True, False, False, True]


def test_in_and_not_in() -> None:
    assert holds("segment in ['high', 'mid']") == [False, False, True, False]
    assert holds("segment not in ['high', 'mid']") == [True, False, False, True]
    assert holds("logins_14d in [0, 12]") == [True, False, False, True]
    assert holds("logins_14d not in [-1, 0]") == [False, False, True, True]
    assert holds("paused in [true]") == [True, False, False, False]
    assert holds("segment in []") == [False] * 4
    assert holds("segment not in []") == [True, False, True, True]


def test_is_answered_works_on_every_kind() -> None:
    assert holds("survey.nps is answered") == [True, False, True, True]
    assert holds("survey.nps is not answered") == [False, True, False, False]
    assert holds("segment is answered") == [True, False, True, True]
    assert holds("paused is not answered") == [False, True, False, False]
    assert holds("arr / 0 is answered") == [False] * 4
    assert holds("survey.csat is answered") == [False] * 4
    assert holds("(arr > 1) is answered") == [True] * 4


def test_answers_compare_with_numbers_numerically_and_with_strings_as_text() -> None:
    assert holds("survey.nps >= 9") == [True, False, False, False]
    assert holds("survey.nps <= 6") == [False, False, False, True]
    assert holds("survey.nps == 'x'") == [False, False, True, False]
    assert holds("survey.nps == 10") == [True, False, False, False]
    assert holds("survey.nps + 1 > 10") == [True, False, False, False]
    assert holds("survey.renewal in ['unsure', 'not_likely']") == [True, False, False, True]
    assert holds("survey.renewal == 'unsure'") == [True, False, False, False]
    assert holds("not (survey.nps >= 9)") == [False, True, True, True]


def test_nulls_never_satisfy_a_comparison() -> None:
    assert holds("arr != 5") == [True, False, True, True]
    assert holds("segment != 'high'") == [True, False, False, True]
    assert holds("logins_14d != 5") == [True, False, True, True]
    assert holds("not (arr == 5)") == [True, True, True, True]
    assert holds("entry.baseline >= 0") == [True, False, True, True]


def test_absent_family_members_mean_no_data() -> None:
    assert holds("milestone.live") == [False] * 4
    assert holds("not milestone.live") == [True] * 4
    assert holds("milestone.configured") == [True, False, False, True]
    assert holds("survey.csat <= 2") == [False] * 4
    assert holds("survey.csat != 'x'") == [False] * 4
    assert holds("entry.missing < 1 or entry.missing >= 1") == [False] * 4


def test_constants_are_folded_in() -> None:
    condition = compile_condition("usage_change_30d <= params.drop", VOCABULARY)
    assert condition.columns == frozenset({"usage_change_30d"})
    assert condition.evaluate(state()).tolist() == [True, False, False, True]
    assert holds("days_since_start <= params.lead_days") == [True, True, False, True]
    assert holds("params.color == 'green' and params.strict") == [True] * 4


def test_division_by_zero_is_no_data() -> None:
    assert holds("arr / 0 > 0") == [False] * 4
    assert holds("arr / 0 != 1") == [False] * 4
    assert holds("1 / 0 == 1 / 0") == [False] * 4
    assert holds("logins_14d / entry.baseline >= 0") == [True, False, False, True]
    assert holds("usage_change_30d <= 0.5 * 1 / 0 or true") == [True] * 4


def test_real_journey_conditions() -> None:
    assert holds("days_since_start >= 60 and (usage_change_30d <= params.drop or logins_14d == 0)") == [
        True,
        False,
        False,
        True,
    ]
    assert holds("logins_14d >= 50% * entry.baseline") == [False, False, True, True]


def test_dtypes_and_empty_frames() -> None:
    frame = state()
    frame["segment"] = frame["segment"].astype("string")
    frame["arr"] = frame["arr"].astype("Float64")
    frame["paused"] = pd.array([True, None, False, False], dtype="boolean")
    assert holds("segment == 'tech_touch' and arr > 100 and not paused", frame) == [False, False, False, True]
    empty = state().iloc[:0]
    assert holds("survey.nps >= 9 or segment in ['x'] or milestone.live", empty) == []


def test_a_declared_name_missing_from_the_frame_is_a_located_error() -> None:
    condition = compile_condition("arr > 1 and segment == 'x'", VOCABULARY)
    with pytest.raises(ConditionError) as caught:
        condition.evaluate(state().drop(columns="segment"))
    assert caught.value.column == 13


# --- located errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "column", "message"),
    [
        ("arr > 1 and foo == 2", 13, "unknown name 'foo'"),
        ("arr > 1 && paused", 9, "unexpected '&'; use 'and'"),
        ("arr > 1 $", 9, "unexpected '$'"),
        ("arr = 1", 5, "unexpected '='; compare with '=='"),
        ("Arr > 1", 1, "unexpected 'A': names are lowercase"),
        ("milestone.Live", 11, "unexpected 'L': names are lowercase"),
        ("segment == 'tech", 12, "unterminated string"),
        ('segment == "a\\', 12, "unterminated string"),
        ("segment == 'a\\nb'", 14, "unsupported escape"),
        ("arr >", 6, "unexpected end of condition"),
        ("arr > and paused", 7, "unexpected 'and'"),
        ("paused and", 11, "unexpected end of condition"),
        ("not", 4, "unexpected end of condition"),
        ("", 1, "empty condition"),
        ("   ", 1, "empty condition"),
        ("(arr > 1", 9, "missing ')' for the '(' at column 1"),
        ("arr > 1)", 8, "unexpected ')'"),
        ("arr 1", 5, "unexpected '1'"),
        ("1.", 2, "unexpected '.'"),
        ("arr and paused", 1, "'and' needs true or false, got number"),
        ("paused or segment", 11, "'or' needs true or false, got text"),
        ("not arr", 5, "'not' needs true or false, got number"),
        ("segment + 1 > 0", 1, "'+' needs numbers, got text"),
        ("1 * paused > 0", 5, "'*' needs numbers, got bool"),
        ("-segment > 1", 2, "'-' needs numbers, got text"),
        ("segment == 1", 9, "cannot compare text with number"),
        ("arr != 'x'", 5, "cannot compare number with text"),
        ("paused == 1", 8, "cannot compare bool with number"),
        ("paused < 1", 8, "'<' needs numbers on both sides, got bool"),
        ("survey.nps >= 'a'", 12, "'>=' needs numbers on both sides, got text"),
        ("segment in [1, 2]", 9, "cannot compare text with a list of number values"),
        ("arr not in ['a']", 5, "cannot compare number with a list of text values"),
        ("segment in ['a', 1]", 18, "list items must all be of one kind"),
        ("segment in ['a', arr]", 18, "a list holds only literal values"),
        ("segment in 'a'", 12, "expected a list"),
        ("['a'] == segment", 1, "a list can only follow 'in'"),
        ("survey.nps is 9", 15, "expected 'answered' after 'is'"),
        ("arr < 1 < 2", 9, "comparisons cannot be chained"),
        ("arr == 1 == true", 10, "comparisons cannot be chained"),
        ("segment in ['a'] in ['b']", 18, "comparisons cannot be chained"),
        ("arr is answered is answered", 17, "comparisons cannot be chained"),
        ("arr", 1, "condition must be true or false, got number"),
        ("  arr + 1", 3, "condition must be true or false, got number"),
        ("(segment)", 1, "condition must be true or false, got text"),
        ("survey.nps", 1, "condition must be true or false, got answer"),
        ("survey", 1, "'survey' needs a member"),
        ("(" * (MAX_DEPTH + 5) + "true" + ")" * (MAX_DEPTH + 5), MAX_DEPTH + 1, "too deeply nested"),
        ("not " * (MAX_DEPTH + 1) + "true", 4 * MAX_DEPTH + 1, "too deeply nested"),
        ("x" * (MAX_LENGTH + 1), MAX_LENGTH + 1, "condition is too long"),
    ],
)
def test_located_errors(source: str, column: int, message: str) -> None:
    caught = error(source)
    assert caught.column == column, caught
    assert message in caught.message
    assert caught.source == source
    assert str(caught) == f"column {column}: {caught.message}"


def test_unknown_names_list_the_known_ones() -> None:
    caught = error("milestone.live and sgement == 'high'")
    assert caught.column == 20
    assert caught.message == (
        "unknown name 'sgement'; known names: arr, days_since_start, entry.<name>, logins_14d, "
        "milestone.<name>, params.color, params.drop, params.lead_days, params.strict, paused, "
        "renewal_signed, segment, survey.<name>, usage_change_30d"
    )


def test_the_leftmost_problem_is_reported() -> None:
    assert error("lambda: 1").message.startswith("unknown name 'lambda'")


def test_condition_errors_pickle_with_their_location() -> None:
    caught = error("arr >")
    again = pickle.loads(pickle.dumps(caught))
    assert (again.message, again.column, again.source) == (caught.message, caught.column, caught.source)


def test_vocabulary_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="kind"):
        Vocabulary(names={"arr": "integer"})  # type: ignore[dict-item]


# --- columns and explain --------------------------------------------------------------------------


def test_columns_are_the_frame_columns_read() -> None:
    condition = compile_condition(
        "arr > params.lead_days and (milestone.live or survey.nps >= 9) and arr < 10 * entry.baseline",
        VOCABULARY,
    )
    assert isinstance(condition, Condition)
    assert condition.columns == frozenset({"arr", "milestone.live", "survey.nps", "entry.baseline"})
    assert compile_condition("1 < 2", VOCABULARY).columns == frozenset()


def test_explain_shows_each_referenced_value_as_python_scalars() -> None:
    condition = compile_condition(
        "logins_14d > 0 and survey.nps >= 9 and milestone.live and arr > 0 and paused", VOCABULARY
    )
    frame = state()
    assert condition.explain(frame, "A0") == {
        "arr": 1000.0,
        "logins_14d": 0,
        "milestone.live": None,
        "paused": True,
        "survey.nps": "10",
    }
    assert type(condition.explain(frame, "A0")["logins_14d"]) is int
    assert condition.explain(frame, "A1") == {
        "arr": None,
        "logins_14d": None,
        "milestone.live": None,
        "paused": None,
        "survey.nps": None,
    }
    with pytest.raises(KeyError):
        condition.explain(frame, "nope")


# --- fuzzing --------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_located(source: str) -> Condition | None:
    try:
        return compile_condition(source, VOCABULARY)
    except ConditionError as caught:
        assert 1 <= caught.column <= len(source) + 1, (source, caught)
        return None


@FUZZ
@given(st.text(max_size=80))
def test_arbitrary_text_compiles_or_fails_with_a_located_error(source: str) -> None:
    check_located(source)


@FUZZ
@given(st.text(alphabet="abnotrisuwed ()[]'\"\\<>=!+-*/.,0123456789%_", max_size=60))
def test_text_near_the_language_compiles_or_fails_with_a_located_error(source: str) -> None:
    check_located(source)


LANGUAGE_TOKENS = [
    *VOCABULARY.names,
    *VOCABULARY.constants,
    "milestone.configured",
    "milestone.live",
    "survey.nps",
    "survey.renewal",
    "survey.csat",
    "entry.baseline",
    "entry.missing",
    "unknown",
    "and",
    "or",
    "not",
    "in",
    "is",
    "answered",
    "true",
    "false",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "(",
    ")",
    "[",
    "]",
    ",",
    "0",
    "1",
    "-0.3",
    "30%",
    "1e3",
    "9",
    "'unsure'",
    "'x'",
    '"10"',
    "'",
    "=",
    "@",
]


@FUZZ
@given(
    st.lists(st.sampled_from(LANGUAGE_TOKENS), min_size=1, max_size=14),
    st.sampled_from([" ", "  ", ""]),
)
def test_token_soups_compile_and_evaluate_or_fail_located(tokens: list[str], separator: str) -> None:
    source = separator.join(tokens)
    condition = check_located(source)
    if condition is not None:
        frame = state()
        result = condition.evaluate(frame)
        assert result.dtype == bool
        assert len(result) == len(frame)
        assert result.index.equals(frame.index)
        assert set(condition.explain(frame, "A2")) == condition.columns


@FUZZ
@given(
    st.recursive(
        st.sampled_from(["paused", "arr > 1", "survey.nps >= 9", "milestone.live"]),
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"({a} and {b})", inner, inner),
            st.builds(lambda a, b: f"{a} or {b}", inner, inner),
            st.builds(lambda a: f"not {a}", inner),
        ),
        max_leaves=20,
    )
)
def test_well_formed_conditions_always_evaluate(source: str) -> None:
    condition = compile_condition(source, VOCABULARY)
    assert len(condition.evaluate(state())) == 4


INJECTIONS = [
    "__import__('os').system('x')",
    "__import__",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "open('f')",
    "open('f').read() == ''",
    "lambda: 1",
    "eval('1')",
    "exec('x = 1')",
    "compile('1', 'f', 'eval')",
    "a.__dict__",
    "arr.__class__",
    "segment.upper() == 'X'",
    "1 if 1 else 2",
    "[x for x in y]",
    "{1: 2}",
    "sentinel()",
    "__builtins__.sentinel()",
    "globals()['sentinel']()",
    "getattr(arr, 'real')",
    "arr; sentinel()",
    "arr > 1 or sentinel()",
    "segment == '' or sentinel()",
    "f'{sentinel()}'",
    "`sentinel`",
    "arr @ arr",
    "arr ** 2 > 1",
    "arr // 2 > 1",
    "arr % 2 == 0",
    "segment[0] == 't'",
    "arr if true else 1",
    "import os",
    "(yield)",
    "arr := 1",
    "paused\nimport os",
    "true; __import__('os')",
    "@sentinel",
    "\\x41",
]


@pytest.mark.parametrize("source", INJECTIONS)
def test_python_injection_is_rejected_and_nothing_runs(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def record(name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: calls.append(name)

    for name in ("eval", "exec", "compile", "open", "sentinel"):
        monkeypatch.setattr(builtins, name, record(name), raising=False)
    monkeypatch.setattr(os, "system", record("os.system"))
    monkeypatch.setattr(pd, "eval", record("pd.eval"))
    monkeypatch.setattr(pd.DataFrame, "eval", record("DataFrame.eval"))
    monkeypatch.setattr(pd.DataFrame, "query", record("DataFrame.query"))

    frame = state()
    with pytest.raises(ConditionError) as caught:
        compile_condition(source, VOCABULARY).evaluate(frame)
    assert 1 <= caught.value.column <= len(source) + 1
    assert calls == []
