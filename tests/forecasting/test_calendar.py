"""French working days against counts checked by hand."""

import datetime as dt

import pytest

from forecasting.calendar import working_days, working_days_frame


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        (2024, 5, 19),  # 23 weekdays - 1 May, 8 May, Ascension 9 May, Whit Monday 20 May
        (2024, 1, 22),  # 23 weekdays - New Year
        (2024, 8, 21),  # 22 weekdays - Assumption (Thu 15)
        (2023, 12, 20),  # 21 weekdays - Christmas (Mon 25)
        (2024, 2, 21),  # no holiday
    ],
)
def test_known_counts(year: int, month: int, expected: int) -> None:
    assert working_days(year, month) == expected


def test_frame_is_sorted_unique_and_future() -> None:
    months = [dt.date(2031, 5, 1), dt.date(2024, 5, 1), dt.date(2024, 5, 1)]
    df = working_days_frame(months)
    assert df["ds"].to_list() == [dt.date(2024, 5, 1), dt.date(2031, 5, 1)]
    assert df["working_days"][0] == 19.0
    assert 15 <= df["working_days"][1] <= 23
