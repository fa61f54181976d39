from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpqlc.quarter import Quarter, parse_quarters, quarter_range


def test_parse_and_format() -> None:
    q = Quarter.parse("2021Q3")
    assert (q.year, q.q, str(q)) == (2021, 3, "2021Q3")
    assert Quarter.parse("2021-q3") == q
    assert q.months == (7, 8, 9)
    assert q.start == datetime(2021, 7, 1, tzinfo=UTC)
    assert (q.end.month, q.end.day, q.end.hour) == (9, 30, 23)
    assert q.datetime_range().startswith("2021-07-01T00:00:00Z/2021-09-30T23:59:59")


@pytest.mark.parametrize("bad", ["2021Q5", "2021", "Q3", "21Q1", "2021Q0"])
def test_bad_quarters_are_named(bad: str) -> None:
    with pytest.raises(ValueError, match="quarter"):
        Quarter.parse(bad)


def test_ranges() -> None:
    qs = parse_quarters("2016Q1:2024Q4")
    assert len(qs) == 36 and qs[0] == Quarter(2016, 1) and qs[-1] == Quarter(2024, 4)
    assert len(quarter_range("2000Q1", "2024Q4")) == 100
    assert parse_quarters("2021Q3,2020Q1:2020Q2,2021Q3") == [Quarter(2020, 1), Quarter(2020, 2), Quarter(2021, 3)]
    with pytest.raises(ValueError, match="backwards"):
        quarter_range("2024Q1", "2023Q4")


@settings(max_examples=200, derandomize=True)
@given(st.integers(min_value=1900 * 4, max_value=2199 * 4 + 3), st.integers(min_value=-500, max_value=500))
def test_index_arithmetic(index: int, n: int) -> None:
    q = Quarter.from_index(index)
    assert q.index == index
    if not 1900 * 4 <= index + n <= 2200 * 4 + 3:
        with pytest.raises(ValueError, match="out of range"):
            q + n
        return
    moved = q + n
    assert moved - q == n
    assert (moved > q) == (n > 0)
    assert Quarter.of(moved.middle) == moved
    assert moved.start <= moved.middle <= moved.end
