"""WinogradParams validation: each check names the parameter and its valid range."""

import pytest

from npugen.rtl.winograd import FilterInput, WinogradParams


def test_defaults_round_trip_and_slug():
    p = WinogradParams()
    assert (p.c_max, p.k_max, p.data_width, p.acc_width, p.filter_input) == \
        (16, 16, 8, 32, FilterInput.RAW)
    q = WinogradParams(c_max=3, k_max=4, filter_input="transformed")
    assert WinogradParams.from_json(q.to_json()) == q
    assert q.slug == "winograd_c3k4_h32w32_d8acc32_transformed"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("c_max", 0, r"c_max must be in 1\.\.256, not 0"),
    ("k_max", 257, r"k_max must be in 1\.\.256, not 257"),
    ("h_max", 2, r"h_max must be in 3\.\.1024, not 2"),
    ("w_max", 1025, r"w_max must be in 3\.\.1024, not 1025"),
    ("engines", 9, r"engines must be in 1\.\.8, not 9"),
    ("data_width", 13, r"data_width must be in 2\.\.12, not 13"),
    ("acc_width", 15, r"acc_width must be in 16\.\.48, not 15"),
])
def test_wrong_values(name, value, message):
    with pytest.raises(ValueError, match=message):
        WinogradParams(**{name: value})


def test_wrong_type():
    with pytest.raises(TypeError, match=r"c_max must be an integer in 1\.\.256, not '4'"):
        WinogradParams(c_max="4")


def test_wrong_filter_input():
    with pytest.raises(ValueError, match="filter_input must be one of raw, transformed"):
        WinogradParams(filter_input="rotated")


def test_primitives():
    q = WinogradParams(c_max=128, k_max=128, primitives="ecp5")
    assert q.slug == "winograd_c128k128_h32w32_d8acc32_raw_ecp5"
    assert WinogradParams.from_json(q.to_json()) == q
    assert q.device_problem("ecp5") is None
    assert q.device_problem("ice40") == "primitives=ecp5 is for ecp5 devices"
    assert WinogradParams().device_problem("ice40") is None
    with pytest.raises(ValueError, match=r"k_max \* c_max must be at most 16384 with "
                                         r"primitives=ecp5, not 16512"):
        WinogradParams(c_max=129, k_max=128, primitives="ecp5")
    with pytest.raises(ValueError, match="primitives must be one of inferred, ecp5"):
        WinogradParams(primitives="ice40")
