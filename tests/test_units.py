import math

import pytest

from mfr.answers.units import canonical, to_base


@pytest.mark.parametrize("a, b", [
    ("km/hr", "km/h"),
    ("kilometers per hour", "km/h"),
    ("newtons", "N"),
    ("m/s²", "m/s^2"),
    ("square centimeters", "cm^2"),
    ("Meters", "m"),
    ("apples", "apple"),
])
def test_spellings_of_one_unit_share_a_canonical_form(a, b):
    assert canonical(a) == canonical(b)


@pytest.mark.parametrize("a, b", [("mA", "MA"), ("m", "min"), ("cm", "cm^2"), ("apple", "orange")])
def test_different_units_differ(a, b):
    assert canonical(a) != canonical(b)


def test_factors_to_base_units():
    dims_cm2, cm2 = to_base("cm^2")
    dims_m2, m2 = to_base("m^2")
    assert dims_cm2 == dims_m2 and math.isclose(cm2, 1e-4)
    assert math.isclose(to_base("km/h")[1], 1000 / 3600)
    assert to_base("week")[1] == 7 * to_base("days")[1]
    assert to_base("N")[0] == to_base("kg m/s^2")[0]


@pytest.mark.parametrize("unit", ["M", "apples", "units^2", "J/(kg K)", "a/b/c", ""])
def test_units_the_table_does_not_know_have_no_factor(unit):
    # "M" (molar) must not read as metres; "?" marks a word the table lacks
    assert to_base(unit) is None
