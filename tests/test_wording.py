import math

import pytest

from ferlib.evaluate.wording import difference_phrase, direction


def test_below_says_below_with_a_positive_size():
    assert difference_phrase(64.1, 70.7) == "6.6 points below the paper's 70.7 %"


def test_above_says_above():
    assert difference_phrase(72.0, 70.7) == "1.3 points above the paper's 70.7 %"


def test_equal_within_the_printed_digit():
    text = difference_phrase(70.74, 70.7)
    assert text.startswith("equal to the paper's 70.7 %")
    assert "above" not in text and "below" not in text


def test_tolerance_and_labels():
    assert difference_phrase(0.66, 0.65, unit="", whose="the best member's", suffix="", digits=3,
                             tolerance=0.02).startswith("equal to the best member's 0.650")
    assert difference_phrase(0.60, 0.65, unit="", whose="the best member's", suffix="", digits=3) == \
        "0.050 below the best member's 0.650"


def test_direction():
    assert direction(2, 1) == "above" and direction(1, 2) == "below" and direction(1, 1.01) == "equal"
    with pytest.raises(ValueError):
        direction(math.nan, 1.0)
