"""SystolicParams validation: every check names the parameter and its valid range."""

import pytest

from npugen.rtl.systolic import Dataflow, SystolicParams


def test_defaults_and_json_round_trip():
    p = SystolicParams()
    assert (p.rows, p.cols, p.a_width, p.w_width, p.acc_width, p.dataflow) == \
        (8, 8, 8, 8, 32, Dataflow.WS)
    q = SystolicParams(rows=3, cols=5, acc_width=20, dataflow="os")
    assert SystolicParams.from_json(q.to_json()) == q
    assert q.slug == "systolic_os_3x5_a8w8acc20"
    assert q.dataflow is Dataflow.OS


def test_frozen():
    with pytest.raises(AttributeError):
        SystolicParams().rows = 3


@pytest.mark.parametrize("value", [0, 65, -1])
def test_wrong_rows(value):
    with pytest.raises(ValueError, match=r"rows must be in 1\.\.64, not"):
        SystolicParams(rows=value)


@pytest.mark.parametrize("value", ["4", 4.0, True, None])
def test_wrong_rows_type(value):
    with pytest.raises(TypeError, match=r"rows must be an integer in 1\.\.64"):
        SystolicParams(rows=value)


def test_wrong_cols():
    with pytest.raises(ValueError, match=r"cols must be in 1\.\.64, not 0"):
        SystolicParams(cols=0)


def test_wrong_a_width():
    with pytest.raises(ValueError, match=r"a_width must be in 2\.\.16, not 17"):
        SystolicParams(a_width=17)


def test_wrong_w_width():
    with pytest.raises(ValueError, match=r"w_width must be in 2\.\.16, not 1"):
        SystolicParams(w_width=1)


@pytest.mark.parametrize("value", [3, 15, 49])
def test_wrong_acc_width(value):
    with pytest.raises(ValueError, match=rf"acc_width must be in 16\.\.48, not {value}"):
        SystolicParams(acc_width=value)


def test_acc_width_floor_follows_operand_widths():
    assert SystolicParams(a_width=4, w_width=4, acc_width=8).acc_width == 8
    with pytest.raises(ValueError, match=r"acc_width must be in 24\.\.48"):
        SystolicParams(a_width=16, w_width=8, acc_width=20)


def test_wrong_dataflow():
    with pytest.raises(ValueError, match="dataflow must be one of ws, os, not 'is'"):
        SystolicParams(dataflow="is")


def test_unknown_field_from_dict():
    with pytest.raises(ValueError, match="unknown systolic parameter"):
        SystolicParams.from_dict({"rows": 2, "depth": 3})


def test_multiplier_choice():
    p = SystolicParams(multiplier="ecp5")
    assert p.slug == "systolic_ws_8x8_a8w8acc32_ecp5"
    assert SystolicParams.from_json(p.to_json()) == p
    with pytest.raises(ValueError,
                       match="multiplier must be one of inferred, ecp5, ice40, not 'dsp'"):
        SystolicParams(multiplier="dsp")
    assert SystolicParams(multiplier="ice40").slug == "systolic_ws_8x8_a8w8acc32_ice40"
    with pytest.raises(ValueError, match="w_width must be 2..8 with multiplier=ice40, not 9"):
        SystolicParams(multiplier="ice40", w_width=9)


def test_result_ram_choice():
    p = SystolicParams(multiplier="ecp5", result_ram="ecp5")
    assert p.slug == "systolic_ws_8x8_a8w8acc32_ecp5_ramecp5"
    assert SystolicParams.from_json(p.to_json()) == p
    assert SystolicParams(result_ram="ecp5").slug == "systolic_ws_8x8_a8w8acc32_ramecp5"


def test_wrong_result_ram():
    with pytest.raises(ValueError, match="result_ram must be one of inferred, ecp5, not 'bram'"):
        SystolicParams(result_ram="bram")


def test_dsp_limit():
    p = SystolicParams(multiplier="ecp5", dsp_limit=156)
    assert p.slug == "systolic_ws_8x8_a8w8acc32_ecp5dsp156"
    assert SystolicParams.from_json(p.to_json()) == p


@pytest.mark.parametrize("value", [-1, 4097])
def test_wrong_dsp_limit(value):
    with pytest.raises(ValueError, match=rf"dsp_limit must be in 0\.\.4096, not {value}"):
        SystolicParams(multiplier="ecp5", dsp_limit=value)


def test_dsp_limit_needs_the_ecp5_multiplier():
    with pytest.raises(ValueError, match="dsp_limit must be 0 with multiplier=inferred, not 4"):
        SystolicParams(dsp_limit=4)
