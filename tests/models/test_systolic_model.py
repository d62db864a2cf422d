"""Golden model against plain Python-int loops (no numpy arithmetic on the reference side)."""

import random

import numpy as np
import pytest

from npugen.rtl.systolic import SystolicParams
from npugen.sim.models.intmath import check_signed, wrap
from npugen.sim.models.systolic import gemm, os_tile, ws_tile


def py_wrap(x, bits):
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def py_gemm(a, w, psum, bits):
    m, k, n = len(a), len(w), len(w[0])
    return [[py_wrap(psum[i][j] + sum(a[i][t] * w[t][j] for t in range(k)), bits)
             for j in range(n)] for i in range(m)]


def test_wrap_matches_python(seed):
    rng = random.Random(seed)
    for bits in (1, 2, 8, 16, 31, 32, 48, 63):
        xs = [rng.randrange(-(1 << 62), 1 << 62) for _ in range(200)] + [0, -1, 1 << 40]
        assert wrap(np.array(xs), bits).tolist() == [py_wrap(x, bits) for x in xs]


@pytest.mark.parametrize("acc_width", [16, 20, 32, 48])
def test_gemm_matches_loops(acc_width, seed):
    rng = random.Random(seed)
    p = SystolicParams(acc_width=acc_width)
    for _ in range(20):
        m, k, n = rng.randint(1, 6), rng.randint(1, 40), rng.randint(1, 6)
        a = [[rng.choice([-128, 127, rng.randint(-128, 127)]) for _ in range(k)] for _ in range(m)]
        w = [[rng.choice([-128, 127, rng.randint(-128, 127)]) for _ in range(n)] for _ in range(k)]
        lim = 1 << (acc_width - 1)
        psum = [[rng.randrange(-lim, lim) for _ in range(n)] for _ in range(m)]
        assert gemm(p, a, w, psum).tolist() == py_gemm(a, w, psum, acc_width)


def test_16_bit_accumulator_really_wraps():
    """The acc16 bench configurations exercise wraparound: all -128 tiles overflow 16 bits."""
    p = SystolicParams(rows=4, cols=4, acc_width=16, dataflow="ws")
    a = np.full((1, 4), -128)
    w = np.full((4, 4), -128)
    exact = 4 * 128 * 128  # 65536
    assert ws_tile(p, a, w).tolist() == [[py_wrap(exact, 16)] * 4] == [[0] * 4]
    p_os = SystolicParams(rows=4, cols=4, acc_width=16, dataflow="os")
    c = os_tile(p_os, np.full((4, 3), 127), np.full((3, 4), 127))
    assert c.max() == py_wrap(3 * 127 * 127, 16)
    assert py_wrap(3 * 127 * 127, 16) != 3 * 127 * 127


def test_ws_and_os_tiles_agree_with_loops(seed):
    rng = np.random.default_rng(seed)
    ws = SystolicParams(rows=3, cols=5, dataflow="ws")
    os_ = SystolicParams(rows=3, cols=5, dataflow="os")
    a = rng.integers(-128, 128, (7, 3))
    w = rng.integers(-128, 128, (3, 5))
    psum = rng.integers(-(1 << 31), 1 << 31, (7, 5))
    assert ws_tile(ws, a, w, psum).tolist() == py_gemm(a.tolist(), w.tolist(), psum.tolist(), 32)
    a2 = rng.integers(-128, 128, (3, 9))
    b2 = rng.integers(-128, 128, (9, 5))
    assert os_tile(os_, a2, b2).tolist() == py_gemm(a2.tolist(), b2.tolist(), [[0] * 5] * 3, 32)


def test_model_rejects_out_of_range_and_bad_shapes():
    p = SystolicParams(rows=2, cols=2)
    with pytest.raises(ValueError, match="a must hold 8-bit"):
        ws_tile(p, [[128, 0]], [[0, 0], [0, 0]])
    with pytest.raises(ValueError, match="w must hold 8-bit"):
        ws_tile(p, [[0, 0]], [[-129, 0], [0, 0]])
    with pytest.raises(ValueError, match="shape"):
        ws_tile(p, [[0, 0, 0]], [[0, 0], [0, 0]])
    with pytest.raises(ValueError, match="dataflow must be os"):
        os_tile(p, [[0], [0]], [[0, 0]])
    with pytest.raises(TypeError):
        check_signed("x", np.array([1.5]), 8)
