"""Winograd golden models: direct conv vs Python loops, Winograd == direct, stage bounds."""

import itertools
from fractions import Fraction

import numpy as np
import pytest

from npugen.rtl.winograd import WinogradParams
from npugen.sim.models import winograd as wg


def py_wrap(x, bits):
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def py_conv(x, w, padding, bits):
    h, wd, c = len(x), len(x[0]), len(x[0][0])
    k = len(w)

    def at(i, j, ch):
        if padding == "same":
            i, j = i - 1, j - 1
        return x[i][j][ch] if 0 <= i < h and 0 <= j < wd else 0
    ho, wo = (h, wd) if padding == "same" else (h - 2, wd - 2)
    return [[[py_wrap(sum(at(i + u, j + v, ch) * w[f][ch][u][v]
                          for ch in range(c) for u in range(3) for v in range(3)), bits)
              for f in range(k)] for j in range(wo)] for i in range(ho)]


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_direct_matches_loops(padding, seed):
    rng = np.random.default_rng(seed)
    p = WinogradParams()
    for h, w, c, k in [(3, 3, 1, 1), (5, 7, 3, 2), (4, 6, 2, 3)]:
        x = rng.integers(-128, 128, (h, w, c))
        f = rng.integers(-128, 128, (k, c, 3, 3))
        assert wg.conv2d_direct(p, x, f, padding).tolist() == \
            py_conv(x.tolist(), f.tolist(), padding, 32)


CASES = [(c, k, h, w) for c in (1, 3, 16) for k in (1, 4) for h, w in ((4, 4), (5, 7), (16, 16))]


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize(("c", "k", "h", "w"), CASES)
def test_winograd_equals_direct(c, k, h, w, padding, seed):
    rng = np.random.default_rng(seed)
    p = WinogradParams(c_max=16, k_max=4)
    for x, f in [
        (rng.integers(-128, 128, (h, w, c)), rng.integers(-128, 128, (k, c, 3, 3))),
        (np.full((h, w, c), -128), np.full((k, c, 3, 3), -128)),
        (np.full((h, w, c), 127), np.full((k, c, 3, 3), 127)),
        (np.full((h, w, c), -128), np.full((k, c, 3, 3), 127)),
    ]:
        assert (wg.conv2d_winograd(p, x, f, padding) == wg.conv2d_direct(p, x, f, padding)).all()


def test_winograd_equals_direct_when_the_output_wraps():
    p = WinogradParams(c_max=16, k_max=1, acc_width=16)
    x = np.full((6, 6, 16), -128)
    f = np.full((1, 16, 3, 3), -128)
    exact = 16 * 9 * 128 * 128
    assert exact >= 1 << 15  # really wraps
    y = wg.conv2d_winograd(p, x, f)
    assert (y == wg.conv2d_direct(p, x, f)).all()
    assert y[0, 0, 0] == py_wrap(exact, 16)


def test_stages_against_fractions(seed):
    """U' = 4 G g G^T with the true (half-valued) G; V and the output transform by hand."""
    rng = np.random.default_rng(seed)
    p = WinogradParams()
    half = Fraction(1, 2)
    g_true = [[1, 0, 0], [half, half, half], [half, -half, half], [0, 0, 1]]
    for _ in range(50):
        g = rng.integers(-128, 128, (3, 3)).tolist()
        u = [[4 * sum(g_true[i][a] * g[a][b] * g_true[j][b] for a in range(3) for b in range(3))
              for j in range(4)] for i in range(4)]
        assert wg.filter_transform(p, g).tolist() == u
        d = rng.integers(-128, 128, (4, 4))
        assert (wg.input_transform(p, d) == wg.BT @ d @ wg.BT.T).all()


def test_bounds_are_derived_and_tight():
    p = WinogradParams()
    assert (p.v_bound, p.u_bound, p.product_bound) == (512, 1152, 589_824)
    assert (p.v_width, p.u_width, p.product_width) == (11, 12, 21)
    # c_max = 16: 4 more bits for the channel sum.
    assert p.m_width == 25 == 21 + 4
    assert WinogradParams(c_max=16, acc_width=16).m_width == 18  # wraps: acc_width + 2
    # The bounds are reached: all -128 filters give U' = -1152; V = -512 at a corner.
    assert wg.filter_transform(p, np.full((3, 3), -128)).min() == -1152
    d = np.array([[0, 0, 0, 0], [0, -128, -128, 0], [0, -128, -128, 0], [0, 0, 0, 0]])
    assert wg.input_transform(p, d).min() == -512
    worst = max(abs(int(v)) for v in (wg.filter_transform(p, np.full((3, 3), -128))
                                      * wg.input_transform(p, d)).flatten())
    assert worst == 589_824


def test_stage_bound_violation_is_caught():
    p = WinogradParams(data_width=4)
    with pytest.raises(ValueError, match="4-bit"):
        wg.input_transform(p, np.full((4, 4), 100))


def test_output_transform_rejects_non_multiple_of_four():
    with pytest.raises(AssertionError, match="multiple of 4"):
        wg.output_transform(np.eye(4, dtype=np.int64))


def test_tile_origins_cover_odd_sizes():
    assert wg.tile_origins(3, 5) == list(itertools.product((0, 2), (0, 2, 4)))
