"""Abbreviated and subscript-zero numbers as the coin page's HTML prints them."""

import pytest

from coinspiders.parsing.numbers import as_int, as_number, known, parse_int, parse_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$12.5M", 12_500_000.0),
        ("2.94K", 2940.0),
        ("83.33M SAN", 83_330_000.0),
        ("$1.23B", 1_230_000_000.0),
        ("$2.26T", 2_260_000_000_000.0),
        ("$113,479.29", 113_479.29),
        ("62,660,371", 62_660_371.0),
        ("$0.1500", 0.15),
        ("-5.44%", -5.44),
        ("+12.21%", 12.21),
        ("\u22123.1%", -3.1),
        ("$0", 0.0),
        ("0%\u00a0(1d)", 0.0),
        (".5", 0.5),
        ("12.5 m", 12_500_000.0),
    ],
)
def test_parse_number(text: str, expected: float) -> None:
    assert parse_number(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$0.0₄3913", 0.00003913),
        ("$0.0₅1234", 0.000001234),
        ("$0.0₁₂5", 0.0000000000005),
        ("0.0₃2", 0.0002),
    ],
)
def test_subscript_zero_prices(text: str, expected: float) -> None:
    assert parse_number(text) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text", [None, "", "--", "-", "n/a", "No data", "∞", "  "])
def test_no_number_is_none_not_zero(text: str | None) -> None:
    assert parse_number(text) is None


def test_scale_letter_must_stand_alone() -> None:
    # "5 Tokens" is five, not five trillion.
    assert parse_number("5 Tokens") == 5.0
    assert parse_number("7 Billion") == 7.0


def test_parse_int() -> None:
    assert parse_int("#6708") == 6708
    assert parse_int("Rank 136") == 136
    assert parse_int("1.5") is None
    assert parse_int("--") is None


def test_as_number_rejects_what_is_not_a_figure() -> None:
    assert as_number(3) == 3
    assert as_number(0.5) == 0.5
    assert as_number("62660371.00") == 62660371.0
    assert as_number(True) is None
    assert as_number(float("nan")) is None
    assert as_number(float("inf")) is None
    assert as_number({"a": 1}) is None


def test_as_number_reads_a_json_numeric_string_whole() -> None:
    # The Pro API and the page's JSON may send numbers as strings, exponent and all.
    assert as_number("1.5e-05") == 1.5e-05
    assert as_number("-2E3") == -2000.0
    assert as_number("nan") is None and as_number("inf") is None
    assert as_number("$12.5M") == 12_500_000.0  # a printed figure still reads


def test_as_int_takes_whole_numbers_only() -> None:
    assert as_int(1027) == 1027
    assert as_int(2.0) == 2 and as_int("1008") == 1008 and as_int("-3") == -3
    assert as_int(2.5) is None and as_int("1.5") is None
    assert as_int(True) is None and as_int(None) is None and as_int([1]) is None
    assert as_int(float("inf")) is None


def test_known_turns_zero_into_unknown() -> None:
    assert known(0) is None
    assert known(0.0) is None
    assert known(None) is None
    assert known(5) == 5
