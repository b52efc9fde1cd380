import pytest

from pytest_drcheck.durations import format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    (30, 30.0), (1.5, 1.5), ("30", 30.0), ("30s", 30.0), ("250ms", 0.25), ("1.5m", 90.0),
    ("4h", 14400.0), ("1d", 86400.0), (" 15m ", 900.0),
])
def test_parse(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 minutes", "-1", "h", "", "1w", True])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration(text)


def test_format() -> None:
    assert [format_duration(s) for s in (0.0042, 3, 90, 600, 14400)] == [
        "4 ms", "3 s", "90 s", "10 min", "4 h"]
