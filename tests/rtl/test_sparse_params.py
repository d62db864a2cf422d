"""SparseParams validation: each check names the parameter and its valid range."""

import pytest

from npugen.rtl.sparse import SparseParams


def test_defaults_round_trip_and_slug():
    p = SparseParams()
    assert (p.n_pe, p.rows_max, p.cols_max, p.act_width, p.acc_width, p.queue_depth,
            p.relu) == (4, 64, 64, 8, 32, 8, False)
    q = SparseParams(n_pe=3, rows_max=10, act_width=16, relu="true")
    assert q.relu is True
    assert SparseParams.from_json(q.to_json()) == q
    assert q.slug == "sparse_pe3_r10c64e1024_a16acc32_q8l4_relu"
    assert q.rows_pe_max == 4 and q.product_width == 32 and q.ptr_width == 11


@pytest.mark.parametrize(("name", "value", "message"), [
    ("n_pe", 0, r"n_pe must be in 1\.\.64, not 0"),
    ("n_pe", 65, r"n_pe must be in 1\.\.64, not 65"),
    ("rows_max", 4097, r"rows_max must be in 1\.\.4096, not 4097"),
    ("cols_max", 0, r"cols_max must be in 1\.\.4096, not 0"),
    ("entries_max", 15, r"entries_max must be in 16\.\.65535, not 15"),
    ("act_width", 12, r"act_width must be one of 8, 16, not 12"),
    ("act_width", 32, r"act_width must be one of 8, 16, not 32"),
    ("acc_width", 49, r"acc_width must be in 16\.\.48, not 49"),
    ("queue_depth", 0, r"queue_depth must be in 1\.\.64, not 0"),
    ("act_lanes", 17, r"act_lanes must be in 1\.\.16, not 17"),
    ("relu", "maybe", r"relu must be one of true, false \(or 1, 0\), not 'maybe'"),
    ("relu", 2, r"relu must be one of true, false"),
])
def test_wrong_values(name, value, message):
    with pytest.raises(ValueError, match=message):
        SparseParams(**{name: value})


def test_wrong_type():
    with pytest.raises(TypeError, match=r"n_pe must be an integer in 1\.\.64, not '4'"):
        SparseParams(n_pe="4")
