"""KeyTemplate.parse: literal pieces and column fields, brace escapes, refused format specs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sluice.contract import KeyTemplate

IDENT = st.from_regex(r"[A-Za-z_$][A-Za-z0-9_$]{0,20}", fullmatch=True)
LITERAL = st.text(max_size=8)


def segments(t: KeyTemplate) -> tuple[list[str], list[str]]:
    """(literal text before each column and after the last, columns): the template's skeleton."""
    lits, cols, cur = [], [], ""
    for lit, col in t.parts:
        cur += lit
        if col:
            lits.append(cur)
            cols.append(col)
            cur = ""
    lits.append(cur)
    return lits, cols


def test_literal_prefix_and_column():
    t = KeyTemplate.parse("USER#{id}")
    assert t.text == "USER#{id}"
    assert t.parts == (("USER#", "id"),)
    assert t.columns == ("id",)


def test_two_columns_with_a_separator():
    assert KeyTemplate.parse("{a}#{b}").parts == (("", "a"), ("#", "b"))


def test_plain_literal_has_no_columns():
    t = KeyTemplate.parse("PROFILE")
    assert t.parts == (("PROFILE", None),)
    assert t.columns == ()


def test_doubled_braces_are_literal_braces():
    t = KeyTemplate.parse("{{x}}#{id}}}")
    assert segments(t) == (["{x}#", "}"], ["id"])


@pytest.mark.parametrize("text", ["{id:05d}", "{id!r}", "{created:%Y}", "X#{id!s:>4}"])
def test_format_specs_and_conversions_are_refused(text):
    with pytest.raises(ValueError, match="(format specs|conversions .*) are not supported"):
        KeyTemplate.parse(text)


def test_empty_field_is_refused():
    with pytest.raises(ValueError, match=r"empty \{\} field"):
        KeyTemplate.parse("USER#{}")


@pytest.mark.parametrize("text", ["USER#{id", "USER#id}"])
def test_unbalanced_braces_are_refused(text):
    with pytest.raises(ValueError):
        KeyTemplate.parse(text)


def _escape(lit: str) -> str:
    return lit.replace("{", "{{").replace("}", "}}")


@given(st.lists(st.tuples(LITERAL, IDENT), max_size=4), LITERAL)
def test_any_escaped_literals_and_columns_parse_back_to_the_same_skeleton(pieces, tail):
    text = "".join(_escape(lit) + "{" + col + "}" for lit, col in pieces) + _escape(tail)
    t = KeyTemplate.parse(text)
    assert segments(t) == ([lit for lit, _ in pieces] + [tail], [col for _, col in pieces])
    assert t.columns == tuple(col for _, col in pieces)
    assert t.filters == ((),) * len(t.parts)


def test_filters_are_aligned_with_parts_in_the_order_written():
    t = KeyTemplate.parse("USER#{email|trim|lower}#{name|upper}!")
    assert t.parts == (("USER#", "email"), ("#", "name"), ("!", None))
    assert t.filters == ((("trim", None), ("lower", None)), (("upper", None),), ())
    assert t.columns == ("email", "name")


def test_date_filter_keeps_its_whole_format_including_colons():
    t = KeyTemplate.parse("{placed_at|date:%Y-%m-%dT%H:%M}#{id}")
    assert t.parts == (("", "placed_at"), ("#", "id"))
    assert t.filters == ((("date", "%Y-%m-%dT%H:%M"),), ())


def test_a_template_without_filters_has_an_empty_filter_chain_per_part():
    t = KeyTemplate.parse("{customer_id}#{created_at}")
    assert t.parts == (("", "customer_id"), ("#", "created_at"))
    assert t.filters == ((), ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{email|slug}", "unknown filter 'slug'"),
        ("{at|date}", "filter 'date' needs an argument"),
        ("{at|date:}", "filter 'date' needs an argument"),
        ("{email|lower:x}", "filter 'lower' takes no argument"),
        ("{|lower}", "a filter without a column"),
    ],
)
def test_bad_filters_are_refused_naming_the_filter(text, message):
    with pytest.raises(ValueError, match=message):
        KeyTemplate.parse(text)
